"""Side effects, grouped by the resource they touch."""
