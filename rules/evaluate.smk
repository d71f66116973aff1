# Evaluation of every finetuned model on the test split, and the ablation table over seeds.


rule evaluate:
    input:
        model=f"{RESULTS}/finetune/{{objective}}_{{backbone}}_f{{fraction}}_s{{seed}}/model.pt",
        cache=CACHE,
    output:
        metrics=f"{RESULTS}/evaluate/{{objective}}_{{backbone}}_f{{fraction}}_s{{seed}}/metrics.json",
        pred=f"{RESULTS}/evaluate/{{objective}}_{{backbone}}_f{{fraction}}_s{{seed}}/pred.json",
        pck=f"{RESULTS}/evaluate/{{objective}}_{{backbone}}_f{{fraction}}_s{{seed}}/pck.csv",
        per_joint=f"{RESULTS}/evaluate/{{objective}}_{{backbone}}_f{{fraction}}_s{{seed}}/per_joint.csv",
        qualitative=f"{RESULTS}/evaluate/{{objective}}_{{backbone}}_f{{fraction}}_s{{seed}}/qualitative.png",
    log:
        "logs/evaluate/{objective}_{backbone}_f{fraction}_s{seed}.log",
    conda:
        "../envs/equihand.yaml"
    threads: job_threads("evaluate")
    resources:
        mem_mb=job_resource("evaluate", "mem_mb"),
        runtime=job_resource("evaluate", "runtime"),
        gpu=job_resource("evaluate", "gpu"),
        # unset (None) when empty/0: any GPU model, and --cpus-per-task=threads
        gpu_model=job_resource("evaluate", "gpu_model") or None,
        cpus_per_gpu=job_resource("evaluate", "cpus_per_gpu") or None,
    params:
        config=cli_config("train", "device"),
        out=output_folder,
    shell:
        "equihand evaluate {params.config} --set train.threads={threads} --checkpoint {input.model} --data {input.cache} --split test --out {params.out} > {log} 2>&1"


rule aggregate:
    input:
        all_evaluations(),
    output:
        csv=report(
            f"{RESULTS}/tables/ablation.csv",
            caption="../report/ablation_table.rst",
            category="Tables",
        ),
        runs=f"{RESULTS}/tables/runs.csv",
        md=f"{RESULTS}/tables/ablation.md",
        tex=f"{RESULTS}/tables/ablation.tex",
        # the same means per cell, flat, for `dvc metrics show` (dvc.yaml)
        metrics=f"{RESULTS}/tables/metrics.json",
    log:
        "logs/aggregate.log",
    conda:
        "../envs/equihand.yaml"
    params:
        out=output_folder,
    shell:
        "equihand aggregate --metrics {input} --out {params.out} > {log} 2>&1"
