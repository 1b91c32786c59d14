"""What a person sees: tables, views, plots."""
