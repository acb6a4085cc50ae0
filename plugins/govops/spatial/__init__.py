"""Spatial verification (空间地理数据核实, item 10): coordinates, coordinate systems, boundaries and addresses."""
