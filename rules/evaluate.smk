# Scoring (equihand.evaluate): every finetuned model on the test split, and the constant-pose
# reference a model must beat.


rule evaluate:
    input:
        model=run_file("finetune", "model.pt"),
        cache=CACHE,
    output:
        metrics=run_file("evaluate", "metrics.json"),
        pred=run_file("evaluate", "pred.json"),
        pck=run_file("evaluate", "pck.csv"),
        per_joint=run_file("evaluate", "per_joint.csv"),
        qualitative=run_file("evaluate", "qualitative.png"),
    log:
        run_log("evaluate"),
    conda:
        "../envs/equihand.yaml"
    threads: job_threads("evaluate")
    resources:
        **job_resources("evaluate"),
    params:
        config=cli_config("train", "device"),
        out=output_folder,
    shell:
        "equihand evaluate {params.config}"
        " --set train.threads={threads}"
        " --checkpoint {input.model}"
        " --data {input.cache}"
        " --split test"
        " --out {params.out}"
        " > {log} 2>&1"


rule reference:
    input:
        cache=CACHE,
    output:
        f"{TABLES_DIR}/reference.json",
    log:
        "logs/reference.log",
    conda:
        "../envs/equihand.yaml"
    params:
        config=cli_config("report"),
    shell:
        "equihand reference {params.config}"
        " --data {input.cache}"
        " --out {output}"
        " > {log} 2>&1"
