"""Rebuild the compact reference files in this folder from the project's source data.

The files next to this script are derived once from public sources (see README.md) and then
kept immutable. This script documents exactly how; the project never runs it at build or
test time. Usage::

    python data/reference/make_reference.py --source <folder holding norman/, gi/, go/>
"""

from __future__ import annotations

import argparse
import gzip
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent

# GEARS spells three perturbed genes with symbols that org.Hs.eg.db and Norman's GI fits have
# since renamed; their GO annotations and GI fits live under the current symbols.
# Norman's GI fits still say ELMSAN1, so each lookup tries both spellings.
GEARS_TO_CURRENT = {"C19orf26": "CBARP", "C3orf72": "FOXL2NB", "ELMSAN1": "MIDEAS",
                    "RHOXF2BB": "RHOXF2B"}


def _spellings(gene: str) -> list[str]:
    return [gene] + ([GEARS_TO_CURRENT[gene]] if gene in GEARS_TO_CURRENT else [])


def _write_gz_tsv(df: pd.DataFrame, path: Path) -> None:
    with gzip.GzipFile(path, "wb", mtime=0) as handle:  # mtime=0: byte-identical rebuilds
        handle.write(df.to_csv(sep="\t", index=False).encode())


def main(source: Path) -> None:
    norman, gi, go = source / "norman", source / "gi", source / "go"

    conditions = pd.read_csv(norman / "gears_norman_conditions.csv")
    conditions[["condition", "n_cells", "kind"]].to_csv(HERE / "norman_conditions.csv", index=False)
    shutil.copy(norman / "splits" / "norman_simulation_1_0.75.json",
                HERE / "gears_simulation_split_seed1.json")
    shutil.copy(gi / "gears_GI_types.json", HERE / "gears_gi_types.json")

    perturbed = sorted({g for c in conditions.condition for g in c.split("+") if g != "ctrl"})
    high_mean = [str(g) for g in np.load(gi / "gears_misc_genes_with_hi_mean.npy", allow_pickle=True)]
    (HERE / "gears_genes_with_hi_mean.txt").write_text("\n".join(high_mean) + "\n")

    # Norman's Theil-Sen GI fits, re-keyed to GEARS condition spelling with the coefficient
    # of each gene attached to that gene (Norman's index order need not match GEARS').
    fits = pd.read_csv(gi / "norman_regr_fits_final.csv", index_col=0)
    current = {g: GEARS_TO_CURRENT.get(g, g) for g in perturbed}
    rows = []
    for condition in conditions.loc[conditions.kind == "combo", "condition"]:
        a, b = condition.split("+")
        candidates = [(f"{x}_{y}", c_a, c_b)
                      for first, second, c_a, c_b in ((a, b, "ts_coef_first", "ts_coef_second"),
                                                      (b, a, "ts_coef_second", "ts_coef_first"))
                      for x in _spellings(first) for y in _spellings(second)]
        for key, c_a, c_b in candidates:
            if key in fits.index:
                fit = fits.loc[key]
                rows.append({"condition": condition, "gene_a": a, "gene_b": b,
                             "c_a": fit[c_a], "c_b": fit[c_b], "corr_fit": fit["corr_fit"],
                             "dcor": fit["dcor"], "dcor_singles": fit["dcor_singles"],
                             "dcor_a": fit["dcor_first" if c_a == "ts_coef_first" else "dcor_second"],
                             "dcor_b": fit["dcor_second" if c_a == "ts_coef_first" else "dcor_first"],
                             # Pearson r of the pair's measured change with each single's, of
                             # the singles with each other and with their sum: the screen's
                             # signal under its own noise, which calibrates the simulator
                             "corr_a": fit["corr_first" if c_a == "ts_coef_first" else "corr_second"],
                             "corr_b": fit["corr_second" if c_a == "ts_coef_first" else "corr_first"],
                             "corr_singles": fit["corr_first_second"], "corr_sum": fit["corr_sum"],
                             "norman_key": key})
                break
    pd.DataFrame(rows).to_csv(HERE / "norman_gi_fits.csv", index=False, float_format="%.6g")

    # Norman's GI-manifold clusters of the single perturbations (GEARS spelling).
    layout = pd.read_csv(gi / "norman_optimal_umap_layout.csv", index_col=0)
    back = {name: g for g in perturbed for name in _spellings(g)}
    clusters = []
    for name, row in layout.iterrows():
        parts = [p for p in name.split("_") if not p.startswith("NegCtrl")]
        if len(parts) == 1 and parts[0] in back:
            clusters.append({"gene": back[parts[0]], "cluster": int(row["cluster"]),
                             "umap_x": row["x"], "umap_y": row["y"]})
    (pd.DataFrame(clusters).drop_duplicates("gene").sort_values("gene")
     .to_csv(HERE / "norman_single_clusters.csv", index=False, float_format="%.5f"))

    # Direct GO annotations (all ontologies, any evidence, as GEARS' gene2go_all.pkl) of every
    # annotated human gene, so that any dataset's genes can be placed in the GO graph (the real
    # Norman file has 5,045 genes, most outside the simulator's panel); the perturbed genes are
    # also keyed by their GEARS spelling.
    with open(go / "gene2go_orgHs_3.16.pkl", "rb") as handle:
        gene2go = pickle.load(handle)
    genes = sorted(set(high_mean) | set(perturbed) | {g for g, terms in gene2go.items() if terms})
    # The GO key of a perturbed gene is org.Hs's automatic match from the source's symbol map;
    # KIAA1804 and RHOXF2BB have none there (as GEARS found), so they stay un-annotated.
    symbol_map = pd.read_csv(go / "norman105_symbol_map.csv").dropna(subset=["orgHs_symbol"])
    go_key = dict(zip(symbol_map.norman_symbol, symbol_map.orgHs_symbol))
    go_rows = [(g, term) for g in genes for term in sorted(gene2go.get(go_key.get(g, g), ()))]
    _write_gz_tsv(pd.DataFrame(go_rows, columns=["gene", "go_id"]), HERE / "gene2go.tsv.gz")

    # Alias -> current symbol for every gene (for matching external embedding tables and
    # datasets, whose gene symbols may be older or newer than the annotations').
    aliases = pd.read_csv(go / "orgHs_alias2symbol.tsv.gz", sep="\t")
    aliases = aliases[aliases.alias_symbol != aliases.symbol]
    _write_gz_tsv(aliases.sort_values(["symbol", "alias_symbol"]), HERE / "alias2symbol.tsv.gz")

    terms = pd.read_csv(go / "GOdb_3.16_terms.tsv.gz", sep="\t")
    used_terms = {t for _, t in go_rows}
    id_col = "go_id" if "go_id" in terms.columns else terms.columns[0]
    terms = terms[terms[id_col].isin(used_terms)]
    _write_gz_tsv(terms, HERE / "go_terms.tsv.gz")
    print(f"wrote reference files for {len(genes)} genes, {len(rows)} GI fits, "
          f"{len(go_rows)} GO annotations, {len(aliases)} aliases, {len(terms)} GO terms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True,
                        help="folder with the norman/, gi/ and go/ source files")
    main(parser.parse_args().source)
