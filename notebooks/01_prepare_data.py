# %% [markdown]
# # Preparing the Norman 2019 data
#
# In this notebook we load (or simulate) the Norman et al. 2019 Perturb-seq screen in GEARS'
# format, compute GEARS' top differentially expressed (DE) genes, reproduce GEARS' simulation
# split with its four test subgroups, build the Gene Ontology (GO) perturbation graph, and write
# everything later chapters read to `results/01_prepare_data/`.
#
# **The data.** Norman et al. activated (CRISPRa) 105 genes in K562 cells, one at a time and in
# 131 pairs, and read out single-cell transcriptomes. GEARS ships a processed copy (284
# conditions, 91,205 cells). That file cannot be downloaded on the machine that builds this
# book, so by default we *simulate* expression on Norman's real scaffold: the exact conditions
# and cell counts, GEARS' exact split, Norman's own genetic-interaction (GI) fits, GEARS' GI
# labels, Norman's GI-manifold clusters and GO annotations. Pass `data_source="dataverse"` or
# the path of GEARS' `perturb_processed.h5ad` to run every chapter on the real data instead.

# %% tags=["parameters"]
# 'quick' (tests), 'default' (make book), 'norman_cpu' (real Norman, 2 cores), 'full'
# (real Norman, GPU)
profile = "default"
# None: from the profile; or 'simulated', 'dataverse', a GEARS .h5ad path
data_source = None
# None: cap on perturbed cells per condition from the profile
max_cells_per_condition = None
max_control_cells = None  # None: cap on control cells from the profile
# None: from the profile (simulated genes besides the perturbed ones)
n_high_mean_genes = None
simulator_seed = 0  # seed of the simulator (and of cell subsampling on real data)
# simulator settings that differ from its defaults, e.g. {"go_weight": 0.0}
simulator_settings = {}
# GEARS' split type; the study's subgroups come from 'simulation'
split_name = "simulation"
split_seed = 1  # seed of the split (1 reproduces the published GEARS Norman split)
train_gene_set_size = 0.75  # share of perturbed genes seen in training
# share of two-seen-gene combinations used for training
combo_seen2_train_frac = 0.75
go_top_k = 20  # GO neighbours per gene in the perturbation graph (GEARS' default)
force = False  # recompute even if results for these parameters exist

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from helpers import data, gi, graphs, pipeline, plots, reference, runs, splits
from helpers.conditions import CONTROL, condition_genes, genes_of

settings = runs.resolve_parameters(
    profile,
    data_source=data_source,
    max_cells_per_condition=max_cells_per_condition,
    max_control_cells=max_control_cells,
    n_high_mean_genes=n_high_mean_genes,
)
parameters = {
    "data_source": settings.data_source,
    "max_cells_per_condition": settings.max_cells_per_condition,
    "max_control_cells": settings.max_control_cells,
    "n_high_mean_genes": settings.n_high_mean_genes,
    "simulator_seed": simulator_seed,
    "split_name": split_name,
    "split_seed": split_seed,
    "train_gene_set_size": train_gene_set_size,
    "combo_seen2_train_frac": combo_seen2_train_frac,
    "go_top_k": go_top_k,
    "reference_files": reference.reference_digest(),
    # a change to the code it computes with recomputes it
    "code": runs.code_digest("helpers.data", "helpers.gi"),
}
runs.check_results_root(
    settings.data_source
)  # real data never writes into the simulated default's results
if settings.data_source == "simulated":
    parameters["simulator"] = data.simulator_fingerprint(
        simulator_seed, simulator_settings
    )
else:  # recorded with every result; a changed file is prepared again
    parameters["data_file_sha256"] = data.file_digest(
        data.data_file(settings.data_source)
    )
splits.check_split_name(split_name)
out = runs.step_dir(pipeline.PREPARE_DATA)
outputs = [
    data.DATASET_FILE,
    "split.json",
    "go_graph.csv",
    "split_composition.csv",
    "cells_per_condition.csv",
    "perturbed_genes.csv",
    "profile_correlations.csv",
    "singles_similarity.csv",
    "similarity_statistics.csv",
]
cached = runs.reuse_or_restart(pipeline.PREPARE_DATA, parameters, outputs, force)
settings

# %% tags=["remove-input"]
# which data this page shows, and the budget
display(
    Markdown(
        runs.data_statement(
            profile,
            settings.data_source,
            simulator_seed,
            parameters.get("data_file_sha256"),
        )
    )
)

# %% [markdown]
# ## 1. Load or simulate the expression data
#
# The simulator (`helpers.simulator`) draws negative-binomial counts on the real scaffold. On the
# log scale, a control or single-perturbation cell's rate for gene $g$ is
#
# $$\log\lambda_{cg} = \log\mu_g + \log\ell_c + z_c^\top W_{\cdot g}
#   + \rho\, z_c^\top \hat m_p\,[g = p] + e_c\big(m_{p}^\top W_{\cdot g}\,[g \ne p] + a\,[g = p]\big)$$
#
# with baseline means $\mu_g$ (log-normal, rescaled so that a control cell holds Norman's depth),
# library sizes $\ell_c$, latent gene programs $W$ whose activity $z_c$ varies from cell to cell,
# a regulator's own expression co-varying with the programs it drives (strength $\rho$), program
# mixtures $m_p$ per perturbed gene (shared within a Norman GI cluster and smoothed over GO
# neighbours, so that similar genes act alike; most of each effect lies on a few dense axes that
# most perturbations move along, as Norman's cells move between erythroid and myeloid states,
# in a direction drawn smoothly over the gene's place on Norman's GI map, his UMAP of the
# perturbations' profiles, so that the singles resemble each other as his do, pair by pair:
# section 6), CRISPRa induction $a$ of the target itself (which the programs it drives do not
# hold back) and
# a per-cell activation efficiency $e_c \sim \mathrm{Beta}$. A perturbation moves a cell's mRNA
# between genes, not its amount: each single's change is offset by a constant that keeps its
# cells' expected library at control's (Norman's conditions keep their mean UMIs per cell within
# 0.5–1.6× of the median), and no gene of a perturbed cell may hold more than a tenth of a median
# library. Counts are library-normalised to $10^4$ and `log1p`-transformed, as in GEARS'
# processed file. How strong single effects are is calibrated to Norman's screen: the pairs'
# profile correlations from the cells (section 6) match those Norman measured.
#
# **Pairs are set on the scale the GI analysis scores.** With $E[\cdot]$ a condition's expected
# mean of log-normalised expression and $\delta_A = E[A] - E[\mathrm{ctrl}]$, a pair's cells are
# drawn so that
#
# $$E[A{+}B] = E[\mathrm{ctrl}] + c_A\,\delta_A + c_B\,\delta_B + r_{AB},$$
#
# with Norman's own Theil–Sen coefficients $c_A, c_B$ (1, 1 where Norman has no fit) and a
# residual $r_{AB}$ on a few genes, sized so that the fit's Pearson r equals Norman's `corr_fit`
# for the pair. Each pair cell gets one log-rate shift, solved per gene so that the cells'
# expectation is exactly that, scaled by one efficiency. What this costs in realism: a real pair
# cell activates its two genes with two independent efficiencies, so a real pair population mixes
# "mostly A", "mostly B" and "both"; here the pair acts as one unit in every cell. Why it is the
# right trade: with two efficiencies acting on log rates, normalisation and `log1p` shrink and
# shift the given coefficients, and the truth the models are scored against would not be the
# interaction the simulator was given. The simulator also saves every condition's noise-free
# expected mean, the second truth of the GI chapter. The parameters are set once from the
# biology and from Norman's data, never tuned to favour a model; those that decide which kind of
# prior has signal are listed in section 6.

# %%
if cached:
    adata, truth = data.read_prepared(out)
else:
    adata, truth = data.load_expression(
        settings.data_source,
        settings.max_cells_per_condition,
        settings.max_control_cells,
        settings.n_high_mean_genes,
        simulator_seed,
        simulator_settings=simulator_settings,
    )
    data.add_de_genes(adata)
# the split is made before anything is written: data unfit for the study stop here
go_annotations = reference.gene2go()
conditions = adata.obs["condition"].astype(str).unique().tolist()
split = splits.make_split(
    split_name,
    conditions,
    set(go_annotations),
    seed=split_seed,
    train_gene_set_size=train_gene_set_size,
    combo_seen2_train_frac=combo_seen2_train_frac,
)
adata

# %% [markdown]
# ## 2. Cells and genes

# %%
cells = (
    adata.obs["condition"]
    .astype(str)
    .value_counts()
    .rename_axis("condition")
    .rename("n_cells")
    .reset_index()
)
cells["kind"] = np.select(
    [
        cells.condition == CONTROL,
        cells.condition.map(lambda c: len(condition_genes(c)) == 1),
    ],
    ["control", "single"],
    "combo",
)
qc = pd.DataFrame(
    {
        "value": [
            adata.n_obs,
            adata.n_vars,
            int((cells.kind == "single").sum()),
            int((cells.kind == "combo").sum()),
            len(genes_of(cells.condition)),
            int(cells.loc[cells.kind == "control", "n_cells"].sum()),
            int(cells.loc[cells.kind != "control", "n_cells"].median()),
        ]
    },
    index=[
        "cells",
        "genes",
        "single-gene conditions",
        "two-gene conditions",
        "perturbed genes",
        "control cells",
        "median cells per perturbation",
    ],
)
display(qc)
fig = plots.cells_per_condition_hist(cells)
runs.atomic_savefig(fig, out / "cells_per_condition.png")
plt.show()

# %% [markdown]
# ## 3. Top differentially expressed genes
#
# GEARS evaluates predictions on each perturbation's top-20 DE genes: every gene is ranked by the
# absolute t statistic of a Welch t-test against control cells (`scanpy.tl.rank_genes_groups`,
# `rankby_abs=True`, `uns['rank_genes_groups_cov_all']`). Its headline metric, `mse_de`, takes the
# first 20 of that ranking; its deeper analysis the first 20 that are not drop-outs (genes whose
# mean is zero in the perturbation but not in control; `uns['top_non_dropout_de_20']`). Both are
# reported in the evaluation chapter. For example, the non-drop-out top 20 of KLF1 activation:

# %%
example = next(c for c in ("KLF1+ctrl", "CEBPE+ctrl") if c in set(cells.condition))
print(example, "top-20 DE genes:", ", ".join(data.top_de_genes(adata, example)))

# %% [markdown]
# ## 4. GEARS' simulation split
#
# GEARS drops conditions with a gene that has no GO annotation, draws 75% of the perturbed genes
# as *seen*, and sorts the test perturbations by how much of them training has seen:
# `combo_seen2` (both genes of a pair seen as singles), `combo_seen1` (one), `combo_seen0`
# (neither) and `unseen_single`. The split is a function of the condition list alone, so every
# profile gets the same split.

# %%
composition = split.composition()
sets = pd.DataFrame(
    {
        "set": ["train (incl. ctrl)", "validation", "test", "dropped (no GO)"],
        "n_conditions": [
            len(split.train),
            len(split.val),
            len(split.test),
            len(split.excluded_not_in_go),
        ],
    }
)
display(sets)
display(composition)
print(
    "Dropped for lack of GO annotation:", ", ".join(sorted(split.excluded_not_in_go))
)
fig = plots.split_composition_bar(composition)
runs.atomic_savefig(fig, out / "split_composition.png")
plt.show()

# %% [markdown]
# The "2 unseen of 2" combinations, `combo_seen0`, are the hardest test: neither gene was ever
# perturbed in training. The reference study's slide listed ten other pairs under that heading;
# each is shown here with the subgroup it really belongs to in GEARS' split.

# %%
print("combo_seen0:", ", ".join(sorted(split.test_subgroup["combo_seen0"])))
slide = [
    "AHR+KLF1",
    "CEBPE+CNN1",
    "CEBPE+KLF1",
    "CNN1+MAPK1",
    "ETS2+CEBPE",
    "ETS2+CNN1",
    "ETS2+MAPK1",
    "FEV+ISL2",
    "FOSB+CEBPE",
    "FOSB+KLF1",
]
by_genes = {frozenset(condition_genes(c)): c for c in conditions}


def true_subgroup(pair: str) -> str:
    condition = by_genes.get(frozenset(pair.split("+")))
    if condition is None:
        return "not a Norman condition"
    return (
        split.subgroup_of(condition)
        if condition in split.test
        else split.set_of(condition)
    )


display(
    pd.DataFrame(
        {
            "slide's pair": slide,
            "subgroup in GEARS' split": map(true_subgroup, slide),
        }
    )
)

# %% [markdown]
# ## 5. The GO perturbation graph and the genes
#
# GEARS links genes by the Jaccard index of their GO annotation sets and keeps, for each gene,
# its 20 strongest neighbours. We build the graph from org.Hs.eg.db annotations shipped with
# the project (GEARS' own `gene2go_all.pkl` is a Dataverse download).

# %%
dataset_genes = set(adata.var["gene_name"].astype(str))
perturbed_genes = set(genes_of(conditions))
graph_genes = sorted(
    g for g in dataset_genes | perturbed_genes if g in go_annotations
)
go_graph = graphs.go_perturbation_graph(go_annotations, graph_genes, k=go_top_k)
print(
    f"GO graph: {go_graph.target.nunique():,} genes, {len(go_graph):,} edges "
    f"(median Jaccard {go_graph.importance.median():.2f})"
)
fig = plots.gene_venn(
    {
        "dataset genes": dataset_genes,
        "perturbation targets": perturbed_genes,
        "GO-annotated": set(graph_genes),
    },
    title="Genes in the data",
)
runs.atomic_savefig(fig, out / "gene_venn.png")
plt.show()
perturbed_table = data.perturbed_gene_summary(adata, set(go_annotations))
perturbed_table["in_go_graph"] = perturbed_table.gene.isin(go_graph.target)
display(
    perturbed_table[
        ~perturbed_table.has_go_annotation | ~perturbed_table.in_expression_matrix
    ]
)

# %% [markdown]
# ## 6. Does the simulation carry what it was given, at Norman's depth?
#
# For simulated data: (a) the cells' depth beside Norman's counts layer; (b) each condition's
# observed change over control against its noise-free expected change (the cells' means converge
# to it; at the screen's cell counts they scatter around it); (c) the simulator's settings that
# decide which kind of gene prior has anything to find.

# %%
means = data.condition_means(adata)  # each condition's mean, read again below
if truth is not None:
    depth = data.depth_table(adata)
    display(depth.round(3))
    fig = plots.depth_histogram(
        adata.obs["total_counts"], reference.NORMAN_COUNTS_LAYER
    )
    runs.atomic_savefig(fig, out / "depth.png")
    plt.show()
    observed = means - means.loc[CONTROL]
    expected = truth.to_df() - truth.to_df().loc[CONTROL]
    changed = [c for c in expected.index if c != CONTROL]
    per_condition_r = pd.Series(
        {
            c: np.corrcoef(expected.loc[c], observed.loc[c, expected.columns])[0, 1]
            for c in changed
        }
    )
    kinds = pd.Series(
        {c: "pair" if len(condition_genes(c)) == 2 else "single" for c in changed}
    )
    recovered = pd.DataFrame(
        {
            "expected change (noise-free)": expected.loc[changed].to_numpy().ravel(),
            "observed change (cells)": observed.loc[changed, expected.columns]
            .to_numpy()
            .ravel(),
        }
    )
    fig = plots.true_vs_observed_scatter(
        recovered.sample(min(len(recovered), 20000), random_state=0),
        "expected change (noise-free)",
        "observed change (cells)",
        title="Every perturbation: expected vs observed change",
    )
    runs.atomic_savefig(fig, out / "simulation_recovery.png")
    plt.show()
    display(
        per_condition_r.groupby(kinds)
        .quantile([0.1, 0.5])
        .unstack()
        .round(2)
        .rename(columns={0.1: "r, 10th percentile", 0.5: "r, median"})
    )
    config = truth.uns["config"]
    knobs = pd.DataFrame(
        {"value": [config[k] for k in data.PRIOR_SIGNAL_KNOBS]},
        index=pd.Index(list(data.PRIOR_SIGNAL_KNOBS), name="setting"),
    )
    knobs["what it decides"] = list(data.PRIOR_SIGNAL_KNOBS.values())
    display(knobs)
    context = runs.get_profile(profile).context_length
    unseen = data.genes_outside_rank_context(
        adata, genes_of(cells.condition), context
    )
    umis = depth.loc["median UMIs per cell"]
    detected = depth.loc["median detected genes per cell"]
    n_perturbed = len(genes_of(cells.condition))
    display(
        Markdown(
            f"Simulated depth: median {umis['simulated']:,.0f} UMIs per cell "
            f"(Norman {umis['norman']:,.0f}), {detected['simulated']:,.0f} detected "
            f"genes per cell (Norman {detected['norman']:,.0f}). Per condition, "
            "observed and expected changes correlate with median "
            f"r {per_condition_r[kinds == 'single'].median():.2f} (singles) and "
            f"{per_condition_r[kinds == 'pair'].median():.2f} (pairs). Priors: "
            "single effects follow each gene's place on Norman's GI map "
            f"and are smoothed over GO neighbours with weight {config['go_weight']} "
            f"(against {config['private_weight']} private), "
            "so GO annotation predicts effects as far as that weight says (the "
            "similarity section below measures how far, against Norman's screen; "
            f"`benchmarks/prior_sensitivity.py` varies it); {len(unseen)} of "
            f"{n_perturbed} perturbed genes never enter a control cell's "
            f"{context}-token rank context, so a co-expression prior learnt from "
            "those contexts has little to say about them."
        )
    )
elif "total_counts" in adata.obs:
    display(
        data.depth_table(adata)
        .drop(columns="norman_scaled")
        .rename(columns={"simulated": "this file"})
        .round(3)
    )
    print("Real data: no simulator truth to compare with.")
else:
    print(
        "Real data without a counts layer: no depth, and no simulator truth to "
        "compare with."
    )

# %% [markdown]
# **Does the data carry the screen's signal under its noise?** For each pair Norman fitted, four
# Pearson correlations over GEARS' high-mean genes (`helpers.gi.profile_correlations`): the
# pair's change over control with each single's change (`corr_a`, `corr_b`), the two singles'
# changes with each other (`corr_singles`) and the pair's change with the singles' sum
# (`corr_sum`). Norman computed the same on his screen, with its real noise (his columns of
# those names; his genes and normalisation differ a little from GEARS'). On simulated data
# these are what calibrates the strength of single effects: too weak, and noise hides the
# pairs' structure that the GI chapter scores.

# %%
fits = reference.gi_fits()
gi_genes = [g for g in reference.high_mean_genes() if g in means.columns]
this_data = "simulated cells" if truth is not None else "this file's cells"
norman_screen = "Norman's screen"
profile_table = pd.concat(
    [
        gi.profile_correlations(means, fits.condition.tolist(), gi_genes).assign(
            source=this_data
        ),
        gi.norman_profile_correlations(fits).assign(source=norman_screen),
    ]
)[["source", "perturbation", "measure", "value"]]
profile_medians = profile_table.pivot_table(
    index="measure", columns="source", values="value", aggfunc="median"
)
n_profiled = profile_table.query("source == @this_data").perturbation.nunique()
if n_profiled:
    fig = plots.profile_correlation_boxes(profile_table, [this_data, norman_screen])
    runs.atomic_savefig(fig, out / "profile_correlations.png")
    plt.show()
    display(profile_medians.round(3))
else:
    print("None of Norman's fitted pairs is in this data: no profile correlations.")

# %% [markdown]
# **Do the singles resemble each other as Norman's do?** Every prior, and GEARS' own GO graph,
# works by borrowing from genes whose effects are alike, so the data must be as alike as the
# screen. For the same pairs, `corr_singles` against the two genes' GO Jaccard and Norman's
# GI-manifold clusters (`helpers.gi.singles_similarity`): on simulated data these calibrate the
# simulator's shared axes (`benchmarks/simulator_fidelity.py`).

# %%
gene2go = reference.gene2go()
manifold = reference.single_clusters()
cluster_of = dict(zip(manifold.gene, manifold.cluster))
singles_rows = profile_table.query("measure == 'corr_singles'")
corr_singles = {
    source: rows.set_index("perturbation").value
    for source, rows in singles_rows.groupby("source")
}
similarity_table = pd.concat(
    [
        gi.singles_similarity(values, gene2go, cluster_of).assign(source=source)
        for source, values in corr_singles.items()
    ]
    or [pd.DataFrame(columns=["perturbation", "corr_singles", "source"])]
)
similarity_stats = pd.DataFrame(
    {
        source: gi.similarity_statistics(rows)
        for source, rows in similarity_table.groupby("source")
    }
)
similarity_stats.index.name = "statistic"
if n_profiled:
    fig = plots.singles_similarity_panels(
        similarity_table, [this_data, norman_screen]
    )
    runs.atomic_savefig(fig, out / "singles_similarity.png")
    plt.show()
    display(similarity_stats.round(3))

# %% [markdown]
# ## 7. Write the results later chapters read

# %%
if not cached:
    data.write_h5ad(adata, out / data.DATASET_FILE)
    if truth is not None:
        data.write_h5ad(truth, out / data.TRUTH_FILE)
    split.to_json(out / "split.json")
    runs.atomic_write_csv(go_graph, out / "go_graph.csv")
    runs.atomic_write_csv(composition, out / "split_composition.csv")
    runs.atomic_write_csv(
        cells.sort_values("condition"), out / "cells_per_condition.csv"
    )
    runs.atomic_write_csv(perturbed_table, out / "perturbed_genes.csv")
    runs.atomic_write_csv(profile_table, out / "profile_correlations.csv")
    runs.atomic_write_csv(similarity_table, out / "singles_similarity.csv")
    runs.atomic_write_csv(
        similarity_stats.reset_index().melt(
            id_vars="statistic", var_name="source", value_name="value"
        ),
        out / "similarity_statistics.csv",
    )
    runs.write_run_json(pipeline.PREPARE_DATA, parameters, outputs)
print(
    "Results in",
    out.relative_to(runs.results_root().parent),
    "(reused from cache)" if cached else "",
)

# %% [markdown]
# ## What we found

# %%
published = reference.gears_split()
same_split = all(
    sorted(getattr(split, name)) == sorted(published["set2conditions"][name])
    for name in ("train", "val", "test")
) and all(
    sorted(split.test_subgroup.get(g, [])) == sorted(members)
    for g, members in published["subgroup"]["test_subgroup"].items()
)
counts = {
    g: len(split.test_subgroup.get(g, [])) for g in splits.SUBGROUPS_BY_DIFFICULTY
}
slide_seen2 = sum(true_subgroup(p) == "combo_seen2" for p in slide)
split_verdict = (
    "reproduces GEARS’ published Norman split exactly"
    if same_split
    else "differs from GEARS’ published Norman split (other conditions, parameters)"
)
dropped = ", ".join(sorted(split.excluded_not_in_go)) or "none"
findings = [
    f"- The data has {len(conditions)} of GEARS' 284 Norman conditions and "
    f"{adata.n_obs:,} cells ({int(qc.loc['control cells', 'value']):,} control; "
    f"median {int(qc.loc['median cells per perturbation', 'value'])} per "
    "perturbation).",
    f"- The split {split_verdict}: {len(split.train)} training conditions (control "
    f"included), {len(split.val)} validation and {len(split.test)} test "
    "perturbations, of which "
    + ", ".join(f"{n} `{g}`" for g, n in counts.items())
    + f"; {len(split.excluded_not_in_go)} conditions are dropped for lack of GO "
    f"annotation ({dropped}).",
    f'- Only {counts["combo_seen0"]} pairs are truly "2 unseen of 2"; {slide_seen2} '
    f"of the {len(slide)} pairs often quoted under that heading have both genes "
    "seen as singles in training (`combo_seen2`).",
    "- Section 6 gives the cells' depth and, on simulated data, how closely each "
    "perturbation's observed change follows its noise-free expected change at the "
    "screen's cell counts: the scatter is the noise that every model, and the "
    "noise ceiling of the evaluation chapter, has to live with.",
]
if n_profiled:
    median_sum = profile_medians.loc["corr_sum"]
    findings.append(
        f"- Over the {n_profiled} pairs Norman fitted, the pair's change correlates "
        f"with the sum of its singles' changes at median r "
        f"{median_sum[this_data]:.2f} in this data's cells (Norman's screen: "
        f"{median_sum[norman_screen]:.2f}); the two singles' changes correlate "
        f"at median r {profile_medians.loc['corr_singles', this_data]:.2f} "
        f"(Norman: {profile_medians.loc['corr_singles', norman_screen]:.2f})."
    )
    ours, his = similarity_stats[this_data], similarity_stats[norman_screen]
    pair_by_pair = corr_singles[this_data].corr(corr_singles[norman_screen])
    gap = abs(ours.median_corr_singles - his.median_corr_singles)
    findings.append(
        f"- The two singles of a pair correlate with median r "
        f"{ours.median_corr_singles:.2f} (Norman {his.median_corr_singles:.2f}), "
        + ("as alike as" if gap <= 0.05 else "not as alike as")
        + " Norman's: `corr_singles` follows the genes' GO Jaccard with "
        f"Spearman {ours.spearman_go_jaccard:.2f} "
        f"(Norman {his.spearman_go_jaccard:.2f})"
        f" and has median {ours.median_same_label:.2f} within a GI-manifold cluster "
        f"label and {ours.median_different_label:.2f} across labels (Norman "
        f"{his.median_same_label:.2f} and "
        f"{his.median_different_label:.2f}). Pair by pair, this data's "
        f"`corr_singles` correlates with Norman's at r {pair_by_pair:.2f}."
    )
display(Markdown("\n".join(findings)))
