# The part-aware probe: frozen encoders (random init, the supervised `none` run, every pretrained
# objective) read whole images and keypoint crops; linear probes and retrieval per encoder and
# seed, then one table, figure and set of claims over all of them (rule part_aware).


rule probe_data:
    input:
        cache=CACHE,
        raw=raw_dataset(config["dataset"]),
    output:
        # the folder also holds one .npy per array (listed in meta.json)
        meta=f"{RESULTS}/probe/data/meta.json",
    log:
        "logs/probe/data.log",
    benchmark:
        "benchmarks/probe_data.tsv"
    conda:
        "../envs/equihand.yaml"
    params:
        config=cli_config("probe"),
        out=output_folder,
    shell:
        "equihand probe-data {params.config} --data {input.cache} --raw {input.raw} --out {params.out} > {log} 2>&1"


rule probe:
    input:
        unpack(probe_input),
    output:
        f"{RESULTS}/probe/{{encoder}}_{{backbone}}_s{{seed}}/probe.csv",
    log:
        "logs/probe/{encoder}_{backbone}_s{seed}.log",
    benchmark:
        "benchmarks/probe/{encoder}_{backbone}_s{seed}.tsv"
    conda:
        "../envs/equihand.yaml"
    threads: job_threads("probe")
    resources:
        mem_mb=job_resource("probe", "mem_mb"),
        runtime=job_resource("probe", "runtime"),
        gpu=job_resource("probe", "gpu"),
        # unset (None) when empty/0: any GPU model, and --cpus-per-task=threads
        gpu_model=job_resource("probe", "gpu_model") or None,
        cpus_per_gpu=job_resource("probe", "cpus_per_gpu") or None,
    params:
        config=cli_config("model", "probe", "train", "device"),
        checkpoint=lambda wildcards, input: input.get("checkpoint", "random"),
        data=lambda wildcards, input: os.path.dirname(input.data),
        out=output_folder,
    shell:
        "equihand probe {params.config} --set train.threads={threads} --set model.backbone={wildcards.backbone} --probe-data {params.data} --checkpoint {params.checkpoint} --encoder {wildcards.encoder} --seed {wildcards.seed} --out {params.out} > {log} 2>&1"


rule part_aware:
    input:
        all_probes(),
    output:
        csv=report(
            f"{RESULTS}/tables/part_aware.csv",
            caption="../report/part_aware_table.rst",
            category="Tables",
        ),
        md=f"{RESULTS}/tables/part_aware.md",
        claims=f"{RESULTS}/tables/part_aware_claims.csv",
        png=report(
            f"{RESULTS}/figures/part_aware.png",
            caption="../report/part_aware.rst",
            category="Figures",
        ),
        pdf=f"{RESULTS}/figures/part_aware.pdf",
    log:
        "logs/part_aware.log",
    conda:
        "../envs/equihand.yaml"
    params:
        config=cli_config("report"),
        table=lambda wildcards, output: output.csv.removesuffix(".csv"),
        figure=lambda wildcards, output: output.png.removesuffix(".png"),
    shell:
        "equihand part-aware {params.config} --runs {input} --table {params.table} --figure {params.figure} > {log} 2>&1"
