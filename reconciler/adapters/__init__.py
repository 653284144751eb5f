"""The world outside: the Quick BI and DataArts Insight clients, and where state lives (folder or git branch)."""
