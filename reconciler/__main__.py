from reconciler.interface.cli import main

main()
