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

from helpers import data, files, pipeline, plots, profiles, reference, roots, runs
from helpers.conditions import genes_of
from helpers.models import genemamba, priors
from helpers.summary import embedding_findings

STEP = pipeline.GENE_EMBEDDINGS
profiles.get_profile(profile)
prepared = data.load_prepared()
out = roots.step_dir(STEP)
runs.forget_run(STEP)  # recomputed every time (seconds); recorded again at the end
adata = prepared.adata
dataset_genes = adata.var["gene_name"].astype(str).tolist()
perturbed = genes_of(adata.obs["condition"].astype(str).unique())
vocabulary_needed = sorted(set(dataset_genes) | set(prepared.go_graph.target))

# %% tags=["remove-input"]
# which data this page shows, and the budget
display(Markdown(runs.data_statement(profile)))

# %% [markdown]
# ## 1. Build the priors

# %%
gene2go = reference.gene2go()
tables = {
    "go_svd": priors.go_svd_embeddings(gene2go, vocabulary_needed, go_svd_components)
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
# every prior is checked before any is written
built = priors.align_priors(
    tables, vocabulary_needed, reference.aliases(), perturbed, sources
)
written = built.write(out)  # and removes a prior given last time but not now
genemamba_run = (
    runs.parameters_fingerprint(pipeline.PRETRAIN_GENEMAMBA)
    if "genemamba" in tables
    else None
)
record = {
    "data_run": prepared.fingerprint,
    "go_svd_components": go_svd_components,
    "embedding_file": embedding_file,
    "published_genemamba": published_genemamba,
    "genemamba_run": genemamba_run,
}
runs.write_run_json(STEP, record, written)
display(built.summary)
display(Markdown(priors.go_coverage_sentence(gene2go, dataset_genes)))

# %% [markdown]
# ## 2. Which genes does each prior know?
#
# The seed study's "number of genes: Norman vs Mamba" diagram, for every prior: the dataset's
# genes, the prior's vocabulary and the perturbation targets.

# %%
for name in tables:
    found = set(built.coverage.query("prior == @name and found").gene)
    sets = {"dataset genes": set(dataset_genes)}
    sets[f"{name} vocabulary (matched)"] = found
    sets["perturbation targets"] = set(perturbed)
    fig = plots.gene_venn(sets, title=f"Genes: data vs {name}")
    files.atomic_savefig(fig, out / f"venn_{name}.png")
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
processes = reference.go_terms().query("ontology == 'BP'").set_index("go_id").term
categories = priors.go_categories(gene2go, dataset_genes, processes)
mean_expression = pd.Series(
    np.asarray(adata.X.mean(axis=0)).ravel(), index=adata.var_names
)
structure = {}  # per prior: what its vectors follow (computed findings below)
for name, table in built.tables.items():
    known = table.loc[priors.known_genes(table, dataset_genes)]
    fig = plots.embedding_pca(
        known, categories, title=f"{name}: {len(known):,} genes (PCA)",
        legend_title="GO biological process",
    )
    files.atomic_savefig(fig, out / f"pca_go_{name}.png")
    plt.show()
    structure[name] = priors.go_structure(known, mean_expression, categories)
    rho = structure[name]["pc1_expression_rho"]
    print(f"{name}: Spearman ρ of PC1 with a gene's mean expression = {rho:.2f}")

# %% [markdown]
# ## 4. Do perturbed genes that act alike sit together?
#
# The same for the perturbed genes only, coloured by Norman's GI-manifold cluster (genes whose
# perturbations move cells alike; grey: unclustered), and each listed gene's five nearest
# perturbed neighbours by cosine similarity.

# %%
clusters = reference.single_clusters().set_index("gene").cluster
neighbour_tables = []
for name, table in built.tables.items():
    known = table.loc[priors.known_genes(table, perturbed)]
    fig = plots.embedding_pca(
        known, priors.cluster_labels(clusters),
        title=f"{name}: perturbed genes (PCA)", legend_title="Norman GI cluster",
        background="unclustered", name_points=True,
    )
    files.atomic_savefig(fig, out / f"pca_{name}.png")
    plt.show()
    neighbours, agreement = priors.cluster_structure(
        known, clusters, neighbour_genes, name
    )
    neighbour_tables.append(neighbours)
    display(neighbours)
    structure[name].update(agreement)
files.atomic_write_csv(
    pd.concat(neighbour_tables, ignore_index=True), out / "neighbours.csv"
)
structure = pd.DataFrame([{"prior": n, **row} for n, row in structure.items()])
files.atomic_write_csv(structure, out / "structure.csv")
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
simulated = (runs.data_provenance() or {}).get("data_source") == "simulated"
display(Markdown(embedding_findings(structure, built.coverage, simulated)))
