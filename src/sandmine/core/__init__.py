"""The core: errors, files, bands, rasters, sites, windows, metrics, params, pictures and the label schema.

Nothing here depends on a sandmine module outside `sandmine.core` (the layers contract of `make lint`).
"""
