"""reconciler: access-as-code for Alibaba Cloud Quick BI Smart Q."""

__version__ = "0.1.0"
