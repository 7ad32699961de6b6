# %% [markdown]
# # Gene embeddings as priors for GEARS
#
# In this notebook we build fixed gene embeddings ("priors") that GEARS can use beside its own
# learned ones, and look at what they know: which genes they cover and whether genes that act
# alike in the screen sit close together.
#
# - `genemamba`: the token embedding table of the GeneMamba pretrained in the previous chapter
#   (one vector per gene of the expression matrix).
# - `go_svd`: a truncated SVD of the gene × GO-term matrix of the shipped annotations. It needs
#   no pretraining and encodes exactly the GO knowledge GEARS' perturbation graph already uses,
#   so it is the control prior: an embedding that adds no new information.
# - `file`: any table gene symbol → vector (CSV, TSV, Parquet or NPZ; e.g. GenePT or scELMo
#   embeddings), given by path. Symbols are matched through org.Hs.eg.db aliases and the
#   coverage is reported.
# - `genemamba_published`: the token embeddings of the published GeneMamba (Qi et al. 2025), when
#   its checkpoint folder from the Hugging Face hub is given by path (`published_genemamba`; the
#   hub cannot be reached from the machine that builds this book).

# %% tags=["parameters"]
# 'quick', 'default', 'norman_cpu' or 'full' (same data as the data chapter)
profile = "default"
go_svd_components = 64  # dimensions of the GO-SVD embedding
# optional path to a gene-embedding table (CSV, TSV, Parquet or NPZ)
embedding_file = None
# optional folder of a published GeneMamba (model.safetensors + tokenizer.json)
published_genemamba = None
# its Ensembl ID → symbol table (CSV/TSV, or GeneMamba's id2symbol.pkl)
published_id_to_symbol = None
# perturbed genes whose nearest neighbours we list
neighbour_genes = ["KLF1", "CEBPE", "ETS2"]
force = False  # rebuild even if embeddings for these parameters exist

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from helpers import data, pipeline, plots, reference, runs
from helpers.conditions import genes_of
from helpers.models import genemamba, priors

STEP = pipeline.GENE_EMBEDDINGS
runs.get_profile(profile)
prepared = data.load_prepared()
out = runs.step_dir(STEP)
runs.forget_run(STEP)  # recomputed every time (seconds); recorded again at the end
adata = prepared.adata
go_graph = prepared.go_graph
dataset_genes = adata.var["gene_name"].astype(str).tolist()
perturbed = genes_of(adata.obs["condition"].astype(str).unique())
vocabulary_needed = sorted(set(dataset_genes) | set(go_graph.target))

# %% tags=["remove-input"]
# which data this page shows, and the budget
display(Markdown(runs.data_statement(profile)))

# %% [markdown]
# ## 1. Build the priors

# %%
tables = {
    "go_svd": priors.go_svd_embeddings(
        reference.gene2go(), vocabulary_needed, go_svd_components
    )
}
genemamba_checkpoint = pipeline.folder("genemamba") / "genemamba.pt"
if genemamba_checkpoint.is_file():
    tables["genemamba"] = genemamba.embedding_table(genemamba_checkpoint)
if embedding_file is not None:
    tables["file"] = priors.read_embedding_table(embedding_file)
if published_genemamba is not None:
    tables["genemamba_published"] = genemamba.published_embedding_table(
        published_genemamba, published_id_to_symbol
    )
sources = {
    "file": str(embedding_file),
    "genemamba_published": str(published_genemamba),
    "genemamba": str(genemamba_checkpoint),
}
aligned, coverage = {}, []
for name, table in tables.items():  # every prior is checked before any is written
    matrix, report = priors.align_embeddings(
        table, vocabulary_needed, reference.aliases(), source=sources.get(name, name)
    )
    aligned[name] = pd.DataFrame(
        matrix, index=vocabulary_needed, columns=[str(c) for c in table.columns]
    )
    coverage.append(report.assign(prior=name, perturbed=report.gene.isin(perturbed)))
coverage = pd.concat(coverage, ignore_index=True)
for name, table in aligned.items():
    runs.atomic_write(out / f"{name}.parquet", table.to_parquet)
for stale in out.glob(
    "*.parquet"
):  # a prior given last time but not now must not be trained on
    if stale.stem not in tables:
        stale.unlink()
runs.atomic_write_csv(coverage, out / "coverage.csv")
runs.write_run_json(
    STEP,
    {
        "data_run": prepared.fingerprint,
        "go_svd_components": go_svd_components,
        "embedding_file": embedding_file,
        "published_genemamba": published_genemamba,
        "genemamba_run": runs.parameters_fingerprint(pipeline.PRETRAIN_GENEMAMBA)
        if "genemamba" in tables
        else None,
    },
    [f"{n}.parquet" for n in tables] + ["coverage.csv"],
)
display(
    coverage.groupby("prior").agg(
        genes=("gene", "size"),
        found=("found", "sum"),
        found_via_alias=("via_alias", "sum"),
        perturbed_found=(
            "perturbed",
            lambda p: int((p & coverage.loc[p.index, "found"]).sum()),
        ),
    )
)
annotated = reference.gene2go()
go_covered = sum(bool(annotated.get(g)) for g in dataset_genes)
display(
    Markdown(
        f"{go_covered:,} of the data's {len(dataset_genes):,} genes "
        f"({go_covered / len(dataset_genes):.0%}) have a GO annotation in the "
        f"shipped org.Hs.eg.db table ({len(annotated):,} annotated human genes); "
        "the others (e.g. mitochondrial genes, lncRNA clone names) get no GO-SVD "
        "vector and no place in the GO graph."
    )
)

# %% [markdown]
# ## 2. Which genes does each prior know?
#
# The seed study's "number of genes: Norman vs Mamba" diagram, for every prior: the dataset's
# genes, the prior's vocabulary and the perturbation targets.

# %%
for name, table in tables.items():
    found = set(coverage.query("prior == @name and found").gene)
    fig = plots.gene_venn(
        {
            "dataset genes": set(dataset_genes),
            f"{name} vocabulary (matched)": found,
            "perturbation targets": set(perturbed),
        },
        title=f"Genes: data vs {name}",
    )
    runs.atomic_savefig(fig, out / f"venn_{name}.png")
    plt.show()

# %% [markdown]
# ## 3. Do genes that share a function sit together?
#
# A PCA of each prior's vectors for all genes of the data, coloured by a broad GO biological
# process. The categories are picked from the annotations, not by hand: the largest BP terms
# among the data's genes that overlap each other little (`helpers.models.priors.go_categories`).
# GO-SVD is built from these very annotations, so it separates them by construction; the
# question is whether GeneMamba, which never saw GO, does too.

# %%
categories = priors.go_categories(
    reference.gene2go(),
    dataset_genes,
    reference.go_terms().query("ontology == 'BP'").set_index("go_id").term,
)
mean_expression = pd.Series(
    np.asarray(adata.X.mean(axis=0)).ravel(), index=adata.var_names
)
structure = []  # per prior: what its vectors follow (computed findings below)
for name in tables:
    aligned = pd.read_parquet(out / f"{name}.parquet")
    known = [g for g in dataset_genes if np.abs(aligned.loc[g]).sum() > 0]
    fig = plots.embedding_pca(
        aligned.loc[known],
        categories,
        title=f"{name}: {len(known):,} genes (PCA)",
        legend_title="GO biological process",
    )
    runs.atomic_savefig(fig, out / f"pca_go_{name}.png")
    plt.show()
    rho = priors.leading_component_correlation(aligned.loc[known], mean_expression)
    print(f"{name}: Spearman ρ of PC1 with a gene's mean expression = {rho:.2f}")
    go_rate, go_chance, go_n = priors.neighbour_agreement(
        aligned.loc[known], categories[categories != "other"], k=5
    )
    structure.append(
        {
            "prior": name,
            "pc1_expression_rho": rho,
            "go_neighbours_same_process": go_rate,
            "go_chance": go_chance,
            "go_genes": go_n,
        }
    )

# %% [markdown]
# ## 4. Do perturbed genes that act alike sit together?
#
# The same for the perturbed genes only, coloured by Norman's GI-manifold cluster (genes whose
# perturbations move cells alike; grey: unclustered), and each listed gene's five nearest
# perturbed neighbours by cosine similarity.

# %%
clusters = reference.single_clusters().set_index("gene").cluster
cluster_labels = clusters[clusters >= 0].map(lambda c: f"cluster {c}")
neighbour_tables = []
for name in tables:
    aligned = pd.read_parquet(out / f"{name}.parquet")
    known = [
        g
        for g in perturbed
        if g in aligned.index and np.abs(aligned.loc[g]).sum() > 0
    ]
    fig = plots.embedding_pca(
        aligned.loc[known],
        cluster_labels,
        title=f"{name}: perturbed genes (PCA)",
        legend_title="Norman GI cluster",
        background="unclustered",
        name_points=True,
    )
    runs.atomic_savefig(fig, out / f"pca_{name}.png")
    plt.show()
    neighbours = priors.nearest_neighbours(
        aligned.loc[known], [g for g in neighbour_genes if g in known], k=5
    )
    neighbour_tables.append(
        neighbours.assign(
            prior=name,
            query_cluster=neighbours["query"].map(clusters),
            neighbour_cluster=neighbours.gene.map(clusters),
        )
    )
    display(neighbour_tables[-1])
    rate, chance, n = priors.neighbour_agreement(
        aligned.loc[known], cluster_labels, k=5
    )
    next(row for row in structure if row["prior"] == name).update(
        cluster_neighbours_same=rate, cluster_chance=chance, clustered_genes=n
    )
runs.atomic_write_csv(
    pd.concat(neighbour_tables, ignore_index=True), out / "neighbours.csv"
)
structure = pd.DataFrame(structure)
runs.atomic_write_csv(structure, out / "structure.csv")
display(structure.round(2))

# %% [markdown]
# ## What we found
#
# Each line below is computed from this build's tables (`coverage.csv`, `structure.csv`): what
# each prior covers, whether its leading axis is just expression level (a rank-token model
# first learns which genes tend to rank high), and how often a gene's five nearest neighbours
# share its broad GO process, or, for perturbed genes, its Norman GI cluster, against the rate
# of random neighbours.

# %%
lines = []
for row in structure.itertuples():
    covered = coverage.query("prior == @row.prior")
    missing = sorted(covered.query("perturbed and not found").gene)
    perturbed_found = int(covered.found[covered.perturbed].sum())
    lines.append(
        f"- **{row.prior}** covers {int(covered.found.sum()):,} of {len(covered):,} "
        f"genes ({perturbed_found} of {int(covered.perturbed.sum())} perturbed genes"
        + (f"; missing {', '.join(missing)}" if missing else "")
        + "). "
        "Its PC1 follows mean expression with "
        f"|ρ| = {row.pc1_expression_rho:.2f}; a gene's nearest neighbours share "
        f"its GO process {row.go_neighbours_same_process:.0%} of the time "
        f"(random: {row.go_chance:.0%}), and a perturbed gene's share its Norman "
        f"cluster {row.cluster_neighbours_same:.0%} of the time "
        f"(random: {row.cluster_chance:.0%})."
    )
if (runs.data_provenance() or {}).get("data_source") == "simulated":
    lines.append(
        "- The data are simulated: apart from the perturbed genes' GO smoothing, "
        "gene programs are random, so a model pretrained on these cells has little "
        "gene biology to learn; GeneMamba's prior tests the plumbing and the "
        "model's inductive bias here, not the published model's knowledge."
    )
lines.append(
    "- GO-SVD is built from the annotations GEARS' perturbation graph already uses: "
    "any gain from it measures what a second route for the same knowledge buys, not "
    "new knowledge."
)
display(Markdown("\n".join(lines)))
