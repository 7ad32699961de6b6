"""Tested building blocks behind the perturbation-prediction book.

Modules, by what they hold:

- ``conditions``: parse and check GEARS condition strings (``ctrl``, ``A+ctrl``, ``A+B``).
- ``reference``: the compact real reference files shipped in ``data/reference/``.
- ``splits``: GEARS' simulation split and its test subgroups.
- ``graphs``: the Gene Ontology perturbation graph.
- ``simulator``: the Norman-scaffold expression simulator (the embedded default data).
- ``data``: load, validate and process GEARS-format AnnData; top DE genes.
- ``runs``: profiles, parameters, results folders, ``run.json`` and atomic writes.
- ``plots``: the book's figures.
"""

__version__ = "0.1.0"
