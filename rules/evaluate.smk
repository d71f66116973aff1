# Evaluation of every finetuned model on the test split, and the ablation table over seeds.


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


rule aggregate:
    input:
        all_evaluations(),
    output:
        csv=report(
            f"{TABLES_DIR}/ablation.csv",
            caption="../report/ablation_table.rst",
            category="Tables",
        ),
        runs=f"{TABLES_DIR}/runs.csv",
        md=f"{TABLES_DIR}/ablation.md",
        tex=f"{TABLES_DIR}/ablation.tex",
        # the same means per cell, flat, for `dvc metrics show` (dvc.yaml)
        metrics=f"{TABLES_DIR}/metrics.json",
    log:
        "logs/aggregate.log",
    conda:
        "../envs/equihand.yaml"
    params:
        out=output_folder,
    # fmt: off[next]
    shell:
        "equihand aggregate"
        " --metrics {input}"
        " --out {params.out}"
        " > {log} 2>&1"
