# %% [markdown]
# # Preparing the Norman 2019 data
#
# In this notebook we load (or simulate) the Norman et al. 2019 Perturb-seq screen in GEARS'
# format, compute GEARS' top differentially expressed (DE) genes, reproduce GEARS' simulation
# split with its four test subgroups, build the Gene Ontology (GO) perturbation graph, and write
# everything later chapters read to `results/01_prepare_data/`. A single-gene screen in GEARS'
# format (such as GEARS' `adamson` or `replogle_k562_essential` file) runs the same book, on
# GEARS' split for single genes (one test subgroup, `unseen_single`).
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
# GEARS' split type; None: the data set's own ('simulation' for Norman's pairs,
# 'simulation_single' for a single-gene screen)
split_name = None
split_seed = 1  # seed of the split (1 reproduces the published GEARS Norman split)
train_gene_set_size = 0.75  # share of perturbed genes seen in training
# share of two-seen-gene combinations used for training
combo_seen2_train_frac = 0.75
go_top_k = 20  # GO neighbours per gene in the perturbation graph (GEARS' default)
force = False  # recompute even if results for these parameters exist

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from helpers import de_genes, files, plots, preparation, profiles, reference, roots
from helpers import runs

settings = profiles.resolve_parameters(
    profile, data_source=data_source,
    max_cells_per_condition=max_cells_per_condition,
    max_control_cells=max_control_cells, n_high_mean_genes=n_high_mean_genes)
parameters = preparation.step_parameters(
    settings, simulator_seed, simulator_settings, split_name, split_seed,
    train_gene_set_size, combo_seen2_train_frac, go_top_k)
settings

# %% tags=["remove-input"]
# which data this page shows, and the budget
display(Markdown(runs.data_statement(profile, settings.data_source, simulator_seed,
                                     parameters.get("data_file_sha256"))))

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
step = preparation.prepare(
    parameters, simulator_settings, settings.context_length, force)
adata, split, out = step.adata, step.split, step.folder
adata

# %% [markdown]
# ## 2. Cells and genes

# %%
display(step.qc)
fig = plots.cells_per_condition_hist(step.cells)
files.atomic_savefig(fig, out / "cells_per_condition.png")
plt.show()

# %% [markdown]
# ## 3. Top differentially expressed genes
#
# GEARS evaluates predictions on each perturbation's top-20 DE genes: every gene is ranked by the
# absolute t statistic of a Welch t-test against control cells (`scanpy.tl.rank_genes_groups`,
# `rankby_abs=True`, `uns['rank_genes_groups_cov_all']`). Its headline metric, `mse_de`, takes the
# first 20 of that ranking; its deeper analysis the first 20 that are not drop-outs (genes whose
# mean is zero in the perturbation but not in control; `uns['top_non_dropout_de_20']`). Both are
# reported in the evaluation chapter. For example, the non-drop-out top 20 of KLF1 activation
# (or, in data without it, of the first single perturbation):

# %%
top = de_genes.top_de_genes(adata, step.example)
print(step.example, "top-20 DE genes:", ", ".join(top))

# %% [markdown]
# ## 4. GEARS' simulation split
#
# GEARS drops conditions with a gene that has no GO annotation, draws 75% of the perturbed genes
# as *seen*, and sorts the test perturbations by how much of them training has seen:
# `combo_seen2` (both genes of a pair seen as singles), `combo_seen1` (one), `combo_seen0`
# (neither) and `unseen_single`. The split is a function of the condition list alone, so every
# profile gets the same split. A single-gene screen has only `unseen_single`.

# %%
composition = split.composition()
display(step.sets, composition)
dropped = ", ".join(sorted(split.excluded_not_in_go))
print("Dropped for lack of GO annotation:", dropped)
fig = plots.split_composition_bar(composition)
files.atomic_savefig(fig, out / "split_composition.png")
plt.show()

# %% [markdown]
# The "2 unseen of 2" combinations, `combo_seen0`, are the hardest test: neither gene was ever
# perturbed in training. The reference study's slide listed ten other pairs under that heading;
# each is shown here with the subgroup it really belongs to in GEARS' split.

# %%
if step.dataset.pairs:
    print("combo_seen0:", ", ".join(sorted(split.test_subgroup["combo_seen0"])))
    display(step.slide_table())
else:
    print(f"No pairs in {step.dataset.title}.")

# %% [markdown]
# ## 5. The GO perturbation graph and the genes
#
# GEARS links genes by the Jaccard index of their GO annotation sets and keeps, for each gene,
# its 20 strongest neighbours. We build the graph from org.Hs.eg.db annotations shipped with
# the project (GEARS' own `gene2go_all.pkl` is a Dataverse download).

# %%
go_graph, genes = step.go_graph, step.perturbed_table
print(f"GO graph: {go_graph.target.nunique():,} genes, {len(go_graph):,} edges "
      f"(median Jaccard {go_graph.importance.median():.2f})")
fig = plots.gene_venn(step.gene_sets, title="Genes in the data")
files.atomic_savefig(fig, out / "gene_venn.png")
plt.show()
display(genes[~genes.has_go_annotation | ~genes.in_expression_matrix])

# %% [markdown]
# ## 6. Does the simulation carry what it was given, at Norman's depth?
#
# For simulated data: (a) the cells' depth beside Norman's counts layer; (b) each condition's
# observed change over control against its noise-free expected change (the cells' means converge
# to it; at the screen's cell counts they scatter around it); (c) the simulator's settings that
# decide which kind of gene prior has anything to find.

# %%
recovery = step.recovery
if recovery is not None:
    display(recovery.depth.round(3))
    fig = plots.depth_histogram(
        adata.obs["total_counts"], reference.NORMAN_COUNTS_LAYER)
    files.atomic_savefig(fig, out / "depth.png")
    plt.show()
    fig = plots.true_vs_observed_scatter(
        recovery.changes.sample(min(len(recovery.changes), 20000), random_state=0),
        *recovery.changes.columns,
        title="Every perturbation: expected vs observed change")
    files.atomic_savefig(fig, out / "simulation_recovery.png")
    plt.show()
    r_by_kind = recovery.per_condition_r.groupby(recovery.kinds).quantile([0.1, 0.5])
    display(r_by_kind.unstack().round(2).rename(
        columns={0.1: "r, 10th percentile", 0.5: "r, median"}))
    display(recovery.knobs)
    display(Markdown(preparation.recovery_sentence(recovery)))
elif step.real_depth is not None:
    display(step.real_depth.round(3))
    print("Real data: no simulator truth to compare with.")
else:
    print("Real data without a counts layer: no depth, and no simulator truth to "
          "compare with.")

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
sources = [step.this_data, preparation.NORMAN_SCREEN]
if step.n_profiled:
    fig = plots.profile_correlation_boxes(step.profile_table, sources)
    files.atomic_savefig(fig, out / "profile_correlations.png")
    plt.show()
    display(step.profile_medians.round(3))
else:
    print("None of Norman's fitted pairs is in this data: no profile correlations.")

# %% [markdown]
# **Do the singles resemble each other as Norman's do?** Every prior, and GEARS' own GO graph,
# works by borrowing from genes whose effects are alike, so the data must be as alike as the
# screen. For the same pairs, `corr_singles` against the two genes' GO Jaccard and Norman's
# GI-manifold clusters (`helpers.gi.singles_similarity`): on simulated data these calibrate the
# simulator's shared axes (`benchmarks/simulator_fidelity.py`).

# %%
if step.n_profiled:
    fig = plots.singles_similarity_panels(step.similarity_table, sources)
    files.atomic_savefig(fig, out / "singles_similarity.png")
    plt.show()
    display(step.similarity_stats.round(3))

# %% [markdown]
# ## 7. The results later chapters read
#
# The prepared data, the split, the GO graph and the tables above are in the data step's folder
# (written once per set of parameters; a rerun with the same parameters reads them back).

# %%
print("Results in", out.relative_to(roots.results_root().parent),
      "(reused from cache)" if step.cached else "")

# %% [markdown]
# ## What we found

# %%
display(Markdown("\n".join(preparation.findings(step))))
