"""The data step (chapter 01) in one call: load or simulate the screen, rank GEARS' DE genes,
split it, build the GO graph, measure how the data compares with Norman's, and write what every
later chapter reads (``pipeline.folder("prepared_data")``).

:func:`prepare` returns a :class:`DataStep` holding every table the chapter shows; the chapter
draws its figures from it and states :func:`findings`. The step is cached on its parameters
(``runs.reuse_or_compute``): the data source (with the file's checksum, or the simulator's
settings), the profile's caps, the split's settings, the shipped reference files and the code.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from helpers import data, datasets, de_genes, download, gi, graphs, pipeline, profiles, reference, roots, runs, simulator, splits
from helpers.conditions import CONTROL, condition_genes, condition_means, genes_of

OUTPUTS = [data.DATASET_FILE, "split.json", data.CONTENT_FILE, "go_graph.csv",
           "split_composition.csv", "cells_per_condition.csv", "perturbed_genes.csv",
           "profile_correlations.csv", "singles_similarity.csv", "similarity_statistics.csv"]
NORMAN_SCREEN = "Norman's screen"  # the source label of Norman's own statistics
# Pairs a reference slide listed as "2 unseen of 2"; the chapter shows where each really lies.
SLIDE_PAIRS = ("AHR+KLF1", "CEBPE+CNN1", "CEBPE+KLF1", "CNN1+MAPK1", "ETS2+CEBPE", "ETS2+CNN1",
               "ETS2+MAPK1", "FEV+ISL2", "FOSB+CEBPE", "FOSB+KLF1")
EXAMPLE_CONDITIONS = ("KLF1+ctrl", "CEBPE+ctrl")  # the DE example, where the data has them


def step_parameters(settings: profiles.Profile, simulator_seed: int, simulator_settings: Mapping[str, Any],
                    split_name: str | None, split_seed: int, train_gene_set_size: float,
                    combo_seen2_train_frac: float, go_top_k: int) -> dict[str, Any]:
    """The data step's cache key and record: its parameters, the reference files' digest, the
    code's digest, and the simulator's settings or the data file's checksum. Stops first if the
    data source would write into another data source's results."""
    roots.check_results_root(settings.data_source)
    if split_name is not None:
        splits.check_split_name(split_name)
    parameters = {
        "data_source": settings.data_source,
        "max_cells_per_condition": settings.max_cells_per_condition,
        "max_control_cells": settings.max_control_cells,
        "n_high_mean_genes": settings.n_high_mean_genes,
        "simulator_seed": simulator_seed, "split_name": split_name, "split_seed": split_seed,
        "train_gene_set_size": train_gene_set_size, "combo_seen2_train_frac": combo_seen2_train_frac,
        "go_top_k": go_top_k, "reference_files": reference.reference_digest(),
        "code": runs.code_digest("helpers.preparation"),
    }
    if settings.data_source == "simulated":
        parameters["simulator"] = simulator.simulator_fingerprint(simulator_seed, simulator_settings)
    else:  # recorded with every result; a changed file is prepared again
        parameters["data_file_sha256"] = download.file_digest(download.data_file(settings.data_source))
    return parameters


@dataclass(frozen=True)
class Recovery:
    """Simulated data only: does the data carry what the simulator was given, at Norman's depth?"""

    depth: pd.DataFrame  # simulator.depth_table
    per_condition_r: pd.Series  # condition → Pearson r of observed and expected change
    kinds: pd.Series  # condition → 'single' or 'pair'
    changes: pd.DataFrame  # expected (noise-free) and observed change, every condition × gene
    knobs: pd.DataFrame  # the simulator's settings that decide which prior has signal
    config: dict[str, Any]
    outside_context: list[str]  # perturbed genes that never enter a control cell's rank context
    n_perturbed: int
    context_length: int


@dataclass(frozen=True)
class DataStep:
    """Everything the data step made, as the chapter shows it."""

    adata: ad.AnnData
    truth: ad.AnnData | None
    dataset: datasets.Dataset
    split: splits.SimulationSplit
    cached: bool
    folder: Path
    cells: pd.DataFrame  # condition, n_cells, kind
    qc: pd.DataFrame
    sets: pd.DataFrame  # conditions per set
    go_graph: pd.DataFrame
    gene_sets: dict[str, set[str]]  # for the Venn diagram
    perturbed_table: pd.DataFrame
    recovery: Recovery | None
    real_depth: pd.DataFrame | None  # real data with a counts layer
    profile_table: pd.DataFrame
    similarity_table: pd.DataFrame
    similarity_stats: pd.DataFrame
    this_data: str  # the source label of this data's statistics
    example: str = field(default="")  # the condition whose DE genes the chapter lists

    @property
    def conditions(self) -> list[str]:
        return self.adata.obs["condition"].astype(str).unique().tolist()

    @property
    def n_profiled(self) -> int:
        return self.profile_table.query("source == @self.this_data").perturbation.nunique()

    @property
    def profile_medians(self) -> pd.DataFrame:
        return self.profile_table.pivot_table(index="measure", columns="source", values="value",
                                              aggfunc="median")

    def slide_table(self) -> pd.DataFrame:
        """Where each of :data:`SLIDE_PAIRS` lies in this split."""
        by_genes = {frozenset(condition_genes(c)): c for c in self.conditions}

        def where(pair: str) -> str:
            condition = by_genes.get(frozenset(pair.split("+")))
            if condition is None:
                return "not a Norman condition"
            split = self.split
            return split.subgroup_of(condition) if condition in split.test else split.set_of(condition)

        return pd.DataFrame({"slide's pair": SLIDE_PAIRS, "subgroup in GEARS' split": map(where, SLIDE_PAIRS)})


def prepare(parameters: dict[str, Any], simulator_settings: Mapping[str, Any], context_length: int,
            force: bool = False) -> DataStep:
    """Run the data step, or read back its results for these ``parameters`` (``runs.reuse_or_compute``:
    the step's own folder is the run, its files the outputs)."""
    made: list[DataStep] = []

    def compute(pending: list[runs.CachedRun]):
        adata, truth = data.load_expression(
            parameters["data_source"], parameters["max_cells_per_condition"], parameters["max_control_cells"],
            parameters["n_high_mean_genes"], parameters["simulator_seed"], simulator_settings=simulator_settings)
        de_genes.add_de_genes(adata)
        made.append(assemble(adata, truth, parameters, context_length, cached=False))
        yield outputs(made[0])

    runs.reuse_or_compute([runs.CachedRun(pipeline.PREPARE_DATA, parameters)], OUTPUTS, compute, force,
                          "the data step")
    if made:
        return made[0]
    adata, truth = data.read_prepared(roots.step_dir(pipeline.PREPARE_DATA))
    return assemble(adata, truth, parameters, context_length, cached=True)


def assemble(adata: ad.AnnData, truth: ad.AnnData | None, parameters: Mapping[str, Any], context_length: int,
             cached: bool) -> DataStep:
    """Everything the chapter shows, from the prepared data. The split is made here, before
    anything is written: data unfit for the study stop with what to do."""
    conditions = adata.obs["condition"].astype(str).unique().tolist()
    dataset = datasets.detect(conditions)
    go_annotations = reference.gene2go()
    split = splits.make_split(parameters["split_name"] or dataset.split_name, conditions,
                              set(go_annotations), seed=parameters["split_seed"],
                              train_gene_set_size=parameters["train_gene_set_size"],
                              combo_seen2_train_frac=parameters["combo_seen2_train_frac"])
    cells = cells_table(adata)
    dataset_genes = set(adata.var["gene_name"].astype(str))
    perturbed_genes = set(genes_of(conditions))
    graph_genes = sorted(g for g in dataset_genes | perturbed_genes if g in go_annotations)
    go_graph = graphs.go_perturbation_graph(go_annotations, graph_genes, k=parameters["go_top_k"])
    perturbed_table = data.perturbed_gene_summary(adata, set(go_annotations))
    perturbed_table["in_go_graph"] = perturbed_table.gene.isin(go_graph.target)
    means = condition_means(adata)
    this_data = "simulated cells" if truth is not None else "this file's cells"
    profile_table, similarity_table, similarity_stats = similarity(means, this_data)
    return DataStep(
        adata=adata, truth=truth, dataset=dataset, split=split, cached=cached,
        folder=roots.step_dir(pipeline.PREPARE_DATA), cells=cells,
        qc=qc_table(adata, cells), sets=split_sets(split), go_graph=go_graph,
        gene_sets={"dataset genes": dataset_genes, "perturbation targets": perturbed_genes,
                   "GO-annotated": set(graph_genes)},
        perturbed_table=perturbed_table,
        recovery=None if truth is None else recovery(adata, truth, means, context_length),
        real_depth=(simulator.depth_table(adata).drop(columns="norman_scaled").rename(columns={"simulated": "this file"})
                    if truth is None and "total_counts" in adata.obs else None),
        profile_table=profile_table, similarity_table=similarity_table, similarity_stats=similarity_stats,
        this_data=this_data, example=example_condition(cells))


def cells_table(adata: ad.AnnData) -> pd.DataFrame:
    """Cells per condition (``condition, n_cells, kind``: control, single or combo)."""
    cells = (adata.obs["condition"].astype(str).value_counts().rename_axis("condition").rename("n_cells")
             .reset_index())
    cells["kind"] = np.select([cells.condition == CONTROL, cells.condition.map(lambda c: len(condition_genes(c)) == 1)],
                              ["control", "single"], "combo")
    return cells


def qc_table(adata: ad.AnnData, cells: pd.DataFrame) -> pd.DataFrame:
    values = {"cells": adata.n_obs, "genes": adata.n_vars,
              "single-gene conditions": int((cells.kind == "single").sum()),
              "two-gene conditions": int((cells.kind == "combo").sum()),
              "perturbed genes": len(genes_of(cells.condition)),
              "control cells": int(cells.loc[cells.kind == "control", "n_cells"].sum()),
              "median cells per perturbation": int(cells.loc[cells.kind != "control", "n_cells"].median())}
    return pd.DataFrame({"value": list(values.values())}, index=list(values))


def split_sets(split: splits.SimulationSplit) -> pd.DataFrame:
    return pd.DataFrame({"set": ["train (incl. ctrl)", "validation", "test", "dropped (no GO)"],
                         "n_conditions": [len(split.train), len(split.val), len(split.test),
                                          len(split.excluded_not_in_go)]})


def example_condition(cells: pd.DataFrame) -> str:
    """KLF1's (or CEBPE's) activation where the data has it, else its first single by name."""
    present = set(cells.condition)
    singles = sorted(cells.condition[cells.kind == "single"])
    return next((c for c in EXAMPLE_CONDITIONS if c in present), singles[0] if singles else "")


def recovery(adata: ad.AnnData, truth: ad.AnnData, means: pd.DataFrame, context_length: int) -> Recovery:
    """Each condition's observed change over control against its noise-free expected change."""
    observed = means - means.loc[CONTROL]
    expected = truth.to_df() - truth.to_df().loc[CONTROL]
    changed = [c for c in expected.index if c != CONTROL]
    per_condition_r = pd.Series({c: np.corrcoef(expected.loc[c], observed.loc[c, expected.columns])[0, 1]
                                 for c in changed})
    kinds = pd.Series({c: "pair" if len(condition_genes(c)) == 2 else "single" for c in changed})
    changes = pd.DataFrame({"expected change (noise-free)": expected.loc[changed].to_numpy().ravel(),
                            "observed change (cells)": observed.loc[changed, expected.columns].to_numpy().ravel()})
    config = truth.uns["config"]
    knobs = pd.DataFrame({"value": [config[k] for k in simulator.PRIOR_SIGNAL_KNOBS]},
                         index=pd.Index(list(simulator.PRIOR_SIGNAL_KNOBS), name="setting"))
    knobs["what it decides"] = list(simulator.PRIOR_SIGNAL_KNOBS.values())
    perturbed = genes_of(adata.obs["condition"].astype(str).unique())
    return Recovery(simulator.depth_table(adata), per_condition_r, kinds, changes, knobs, config,
                    data.genes_outside_rank_context(adata, perturbed, context_length), len(perturbed),
                    context_length)


def similarity(means: pd.DataFrame, this_data: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """For each pair Norman fitted: the profile correlations in this data's cells beside his
    (``helpers.gi.profile_correlations``), how alike the two singles are against the genes' GO
    Jaccard and his GI-manifold clusters, and the statistics that sum that up, per source."""
    fits = reference.gi_fits()
    gi_genes = [g for g in reference.high_mean_genes() if g in means.columns]
    profile_table = pd.concat([
        gi.profile_correlations(means, fits.condition.tolist(), gi_genes).assign(source=this_data),
        gi.norman_profile_correlations(fits).assign(source=NORMAN_SCREEN),
    ])[["source", "perturbation", "measure", "value"]]
    gene2go = reference.gene2go()
    manifold = reference.single_clusters()
    cluster_of = dict(zip(manifold.gene, manifold.cluster))
    singles_rows = profile_table.query("measure == 'corr_singles'")
    similarity_table = pd.concat(
        [gi.singles_similarity(rows.set_index("perturbation").value, gene2go, cluster_of).assign(source=source)
         for source, rows in singles_rows.groupby("source")]
        or [pd.DataFrame(columns=["perturbation", "corr_singles", "source"])])
    stats = pd.DataFrame({source: gi.similarity_statistics(rows)
                          for source, rows in similarity_table.groupby("source")})
    stats.index.name = "statistic"
    return profile_table, similarity_table, stats


def outputs(step: DataStep) -> dict[str, Any]:
    """What later chapters read, file name → value (written by ``runs.reuse_or_compute``)."""
    made = {data.DATASET_FILE: step.adata}
    if step.truth is not None:
        made[data.TRUTH_FILE] = step.truth
    stats = step.similarity_stats.reset_index().melt(id_vars="statistic", var_name="source", value_name="value")
    signature = json.dumps(data.content_signature(step.adata, step.split))  # computed once, here
    return made | {"split.json": step.split.json_text(), data.CONTENT_FILE: signature,
                   "go_graph.csv": step.go_graph,
                   "split_composition.csv": step.split.composition(),
                   "cells_per_condition.csv": step.cells.sort_values("condition"),
                   "perturbed_genes.csv": step.perturbed_table, "profile_correlations.csv": step.profile_table,
                   "singles_similarity.csv": step.similarity_table, "similarity_statistics.csv": stats}


def recovery_sentence(r: Recovery) -> str:
    umis, detected = r.depth.loc["median UMIs per cell"], r.depth.loc["median detected genes per cell"]
    return (f"Simulated depth: median {umis['simulated']:,.0f} UMIs per cell (Norman {umis['norman']:,.0f}), "
            f"{detected['simulated']:,.0f} detected genes per cell (Norman {detected['norman']:,.0f}). Per "
            "condition, observed and expected changes correlate with median r "
            f"{r.per_condition_r[r.kinds == 'single'].median():.2f} (singles) and "
            f"{r.per_condition_r[r.kinds == 'pair'].median():.2f} (pairs). Priors: single effects follow each "
            f"gene's place on Norman's GI map and are smoothed over GO neighbours with weight "
            f"{r.config['go_weight']} (against {r.config['private_weight']} private), so GO annotation "
            "predicts effects as far as that weight says (the similarity section below measures how far, "
            "against Norman's screen; `benchmarks/prior_sensitivity.py` varies it); "
            f"{len(r.outside_context)} of {r.n_perturbed} perturbed genes never enter a control cell's "
            f"{r.context_length}-token rank context, so a co-expression prior learnt from those contexts "
            "has little to say about them.")


def findings(step: DataStep) -> list[str]:
    """The chapter's findings, computed from the step's tables."""
    split, qc = step.split, step.qc
    counts = {g: len(split.test_subgroup[g]) for g in splits.SUBGROUPS_BY_DIFFICULTY if g in split.test_subgroup}
    dropped = ", ".join(sorted(split.excluded_not_in_go)) or "none"
    n_conditions = len(step.conditions)
    what = (f"{n_conditions} of GEARS' 284 Norman conditions" if step.dataset.gi_reference
            else f"{n_conditions} conditions ({n_conditions - 1} single-gene perturbations and control)")
    intro = "" if step.dataset is datasets.NORMAN else f"is {step.dataset.title}. It "
    found = [f"- The data {intro}has {what} and {step.adata.n_obs:,} cells "
             f"({int(qc.loc['control cells', 'value']):,} control; median "
             f"{int(qc.loc['median cells per perturbation', 'value'])} per perturbation)."]
    if step.dataset is datasets.NORMAN:
        published = reference.gears_split()
        same = all(sorted(getattr(split, s)) == sorted(published["set2conditions"][s]) for s in ("train", "val", "test"))
        same = same and all(sorted(split.test_subgroup.get(g, [])) == sorted(members)
                            for g, members in published["subgroup"]["test_subgroup"].items())
        verdict = ("reproduces GEARS’ published Norman split exactly" if same
                   else "differs from GEARS’ published Norman split (other conditions, parameters)")
    else:
        verdict = f"is GEARS’ `{split.name}` split"
    found.append(f"- The split {verdict}: {len(split.train)} training conditions (control included), "
                 f"{len(split.val)} validation and {len(split.test)} test perturbations, of which "
                 + ", ".join(f"{n} `{g}`" for g, n in counts.items())
                 + f"; {len(split.excluded_not_in_go)} conditions are dropped for lack of GO annotation ({dropped}).")
    if step.dataset.pairs:
        slide = step.slide_table()
        seen2 = int((slide["subgroup in GEARS' split"] == "combo_seen2").sum())
        found.append(f'- Only {counts["combo_seen0"]} pairs are truly "2 unseen of 2"; {seen2} of the '
                     f"{len(slide)} pairs often quoted under that heading have both genes seen as singles in "
                     "training (`combo_seen2`).")
    found.append("- Section 6 gives the cells' depth and, on simulated data, how closely each perturbation's "
                 "observed change follows its noise-free expected change at the screen's cell counts: the "
                 "scatter is the noise that every model, and the noise ceiling of the evaluation chapter, has "
                 "to live with.")
    if step.n_profiled:
        medians, this, norman = step.profile_medians, step.this_data, NORMAN_SCREEN
        found.append(
            f"- Over the {step.n_profiled} pairs Norman fitted, the pair's change correlates with the sum of its "
            f"singles' changes at median r {medians.loc['corr_sum', this]:.2f} in this data's cells (Norman's "
            f"screen: {medians.loc['corr_sum', norman]:.2f}); the two singles' changes correlate at median r "
            f"{medians.loc['corr_singles', this]:.2f} (Norman: {medians.loc['corr_singles', norman]:.2f}).")
        ours, his = step.similarity_stats[this], step.similarity_stats[norman]
        corr_singles = {s: rows.set_index("perturbation").corr_singles
                        for s, rows in step.similarity_table.groupby("source")}
        pair_by_pair = corr_singles[this].corr(corr_singles[norman])
        alike = "as alike as" if abs(ours.median_corr_singles - his.median_corr_singles) <= 0.05 else "not as alike as"
        found.append(
            f"- The two singles of a pair correlate with median r {ours.median_corr_singles:.2f} (Norman "
            f"{his.median_corr_singles:.2f}), {alike} Norman's: `corr_singles` follows the genes' GO Jaccard "
            f"with Spearman {ours.spearman_go_jaccard:.2f} (Norman {his.spearman_go_jaccard:.2f}) and has median "
            f"{ours.median_same_label:.2f} within a GI-manifold cluster label and "
            f"{ours.median_different_label:.2f} across labels (Norman {his.median_same_label:.2f} and "
            f"{his.median_different_label:.2f}). Pair by pair, this data's `corr_singles` correlates with "
            f"Norman's at r {pair_by_pair:.2f}.")
    return found
