"""River-scale survey: rivers → buffer → chunks → per chunk and period a mask and polygons → one survey.

A survey covers every river of a vector file (optionally clipped to a region) within `aoi.buffer_m`,
for each of several periods. The buffer is cut into **chunks**: squares of `survey.chunk_km` aligned
to the UTM grid of their zone (a river crossing zones is split at the zone's meridian, each chunk lies
in one zone and no ground is in two chunks). A chunk's id names its zone, size and position only
(`44N_5km_e0130_n0541`), so adding a river or a period leaves every existing chunk's id, image and
prediction as they were. Polygons of mining are made per chunk and merged across chunk seams, so a
mine cut by a seam is one polygon of the survey.

Modules: `periods`, `rivers`, `chunks` (the plan's geometry), `plan` (what a run will do), `imagery`
(images through the source, `sources.base.Source.export_chunks`), `probability` (predictions, cached),
`masks` (per chunk and period), `seams`, `mosaic`, `gpkg`, `map_page`, `summary`. `steps/survey.py` runs them.
"""
