# download stage: PDB entries (wwPDB) and AlphaFold DB models into results/raw/{pdb,afdb}
# (the servers' own layout) + one manifest per source, results/download/{pdb,afdb}_manifest.parquet.
#
# ID list -> scatter into shards (fetch jobs, `threads` parallel transfers each) -> gather of the
# shard manifests. The raw files are recorded in the manifests (path, sha256), which is what the
# process stage reads; they are not declared outputs because shards share one folder.
# The rules are natural `localrules` candidates (network-bound, little CPU) but stay ordinary
# rules so that a cluster profile can decide where they run (login nodes often forbid it).
import os


DL = config["download"]
# Relative mirror paths and ID files are resolved against the workflow folder (passed to the
# commands as a params lambda: a folder used to resolve config values, not a file prefix).
# Relative to the working directory ("." when Snakemake runs from the repository root, as
# always documented): an absolute path here would change when the project is moved or cloned
# elsewhere, and a changed param reruns the downloads and everything after them.
DL_ROOT = os.path.relpath(workflow.basedir)
_dl_local = lambda path: (
    path if os.path.isabs(path) else os.path.normpath(os.path.join(DL_ROOT, path))
)


scattergather:
    download_pdb=DL["pdb"]["shards"],
    download_afdb=DL["afdb"]["shards"],


wildcard_constraints:
    source="pdb|afdb",

# The manifests each source's gather reads: its shards' (scattergather download_<source>), and
# Swiss-Prot's tar for afdb.
DL_MANIFESTS = {
    source: (
        getattr(gather, f"download_{source}")(
            res("download", source, "manifest-{scatteritem}.parquet")
        )
        if DL[source]["enabled"]
        else []
    )
    for source in ("pdb", "afdb")
}
if DL["afdb"]["swissprot"]["enabled"]:
    DL_MANIFESTS["afdb"].append(res("download", "afdb", "swissprot_manifest.parquet"))

rule download_pdb_ids:
    input:
        [_dl_local(DL["pdb"]["id_file"])]
        if DL["pdb"]["id_source"] == "file" and DL["pdb"]["id_file"]
        else [],
    output:
        ensure(res("download", "pdb_ids.txt"), non_empty=True),
    log:
        res("logs", "download", "pdb_ids.log"),
    benchmark:
        res("benchmarks", "download", "pdb_ids.tsv")
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 1000 * attempt,
        runtime=30,
    retries: 3
    params:
        code=code_version("download"),
        cfg=section("download"),
        root=lambda wc: DL_ROOT,
    shell:
        "dplm2 download ids --source pdb --output {output} --params {params.cfg:q} "
        "--relative-to {params.root:q} > {log} 2>&1"


rule download_afdb_ids:
    input:
        [_dl_local(DL["afdb"]["accession_file"])] if DL["afdb"]["accession_file"] else [],
    output:
        ensure(res("download", "afdb_accessions.txt"), non_empty=True),
    log:
        res("logs", "download", "afdb_ids.log"),
    benchmark:
        res("benchmarks", "download", "afdb_ids.tsv")
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 1000 * attempt,
        runtime=10,
    params:
        code=code_version("download"),
        cfg=section("download"),
        root=lambda wc: DL_ROOT,
    shell:
        "dplm2 download ids --source afdb --output {output} --params {params.cfg:q} "
        "--relative-to {params.root:q} > {log} 2>&1"


rule download_fetch:
    """One shard of a source's ID list (scattergather download_pdb / download_afdb)."""
    input:
        ids=lambda wc: getattr(rules, f"download_{wc.source}_ids").output[0],
    output:
        ensure(res("download", "{source}", "manifest-{scatteritem}.parquet"), non_empty=True),
    log:
        res("logs", "download", "{source}-{scatteritem}.log"),
    benchmark:
        res("benchmarks", "download", "{source}-{scatteritem}.tsv")
    conda:
        "../../envs/data.yaml"
    threads: 4
    resources:
        mem_mb=lambda wc, attempt: 1000 * attempt,
        runtime=240,
    retries: 2
    params:
        code=code_version("download"),
        cfg=section("download"),
        root=lambda wc: DL_ROOT,
        raw=res("raw", "{source}"),
    shell:
        "dplm2 download fetch --source {wildcards.source} --ids {input.ids} --shard {wildcards.scatteritem} "
        "--raw {params.raw:q} --manifest {output} --threads {threads} --params {params.cfg:q} "
        "--relative-to {params.root:q} > {log} 2>&1"


rule download_swissprot:
    input:
        [_dl_local(DL["afdb"]["swissprot"]["accession_file"])]
        if DL["afdb"]["swissprot"]["accession_file"]
        else [],
    output:
        ensure(res("download", "afdb", "swissprot_manifest.parquet"), non_empty=True),
    log:
        res("logs", "download", "swissprot.log"),
    benchmark:
        res("benchmarks", "download", "swissprot.tsv")
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 1000 * attempt,
        runtime=720,
    retries: 2
    params:
        code=code_version("download"),
        cfg=section("download"),
        root=lambda wc: DL_ROOT,
        raw=res("raw", "afdb", "swissprot"),
    shell:
        "dplm2 download swissprot --raw {params.raw:q} --manifest {output} "
        "--params {params.cfg:q} --relative-to {params.root:q} > {log} 2>&1"


rule download_gather:
    """A source's manifest: its shard manifests (and, for afdb, Swiss-Prot's) in one table."""
    input:
        lambda wc: DL_MANIFESTS[wc.source],
    output:
        res("download", "{source}_manifest.parquet"),
    log:
        res("logs", "download", "{source}_gather.log"),
    benchmark:
        res("benchmarks", "download", "{source}_gather.tsv")
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 2000 * attempt,
        runtime=30,
    params:
        code=code_version("download"),
        cfg=section("download"),
    shell:
        "dplm2 download gather --inputs {input} --output {output} --params {params.cfg:q} "
        "> {log} 2>&1"


DOWNLOAD_TARGETS = [
    res("download", "pdb_manifest.parquet"),
    res("download", "afdb_manifest.parquet"),
]
