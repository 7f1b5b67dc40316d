"""CLI command groups, one module per stage; cli.py assembles them."""
