# Data: synthesise (default) or download FreiHAND, then validate and cache it for training.


rule synth:
    output:
        directory(raw_dataset("synth")),
    log:
        "logs/synth.log",
    benchmark:
        "benchmarks/synth.tsv"
    conda:
        "../envs/equihand.yaml"
    threads: all_cores()
    params:
        config=cli_config("synth"),
    shell:
        "equihand synth {params.config}"
        " --set synth.workers={threads}"
        " --out {output}"
        " > {log} 2>&1"


rule download:
    output:
        directory(raw_dataset("freihand")),
    log:
        "logs/download.log",
    conda:
        "../envs/equihand.yaml"
    params:
        config=cli_config("download"),
    # fmt: off[next]
    shell:
        "equihand download {params.config}"
        " --out {output}"
        " > {log} 2>&1"


rule prepare:
    input:
        raw_dataset("{dataset}"),
    output:
        directory(prepared_cache("{dataset}")),
    log:
        "logs/prepare_{dataset}.log",
    benchmark:
        "benchmarks/prepare_{dataset}.tsv"
    conda:
        "../envs/equihand.yaml"
    threads: all_cores()
    params:
        config=cli_config("prepare"),
    shell:
        "equihand prepare {params.config}"
        " --set prepare.workers={threads}"
        " --root {input}"
        " --out {output}"
        " > {log} 2>&1"
