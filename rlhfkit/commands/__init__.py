"""Command-line sub-apps, one module per area; rlhfkit/cli.py registers them."""
