# The part-aware probe: frozen encoders (random init, the supervised `none` run, every pretrained
# objective) read whole images and keypoint crops; linear probes and retrieval per encoder and
# seed (the table, figure and claims over all of them: rule part_aware, rules/analysis.smk).


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
        "equihand probe-data {params.config}"
        " --data {input.cache}"
        " --raw {input.raw}"
        " --out {params.out}"
        " > {log} 2>&1"


rule probe:
    input:
        unpack(probe_input),
    output:
        run_file("probe", "probe.csv"),
    log:
        run_log("probe"),
    benchmark:
        run_benchmark("probe")
    conda:
        "../envs/equihand.yaml"
    threads: job_threads("probe")
    resources:
        **job_resources("probe"),
    params:
        config=cli_config("model", "probe", "train", "device"),
        data=input_folder("data"),
        checkpoint=checkpoint_arg,
        out=output_folder,
    shell:
        "equihand probe {params.config}"
        " --set train.threads={threads}"
        " --set model.backbone={wildcards.backbone}"
        " --probe-data {params.data}"
        " --checkpoint {params.checkpoint}"
        " --encoder {wildcards.encoder}"
        " --seed {wildcards.seed}"
        " --out {params.out}"
        " > {log} 2>&1"
