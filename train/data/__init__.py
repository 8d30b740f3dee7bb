"""Data loaders for the three course data sets. Tests read ../shared/data and never download."""
