# Training: pretraining per {objective, backbone, seed} (none has no pretraining job), then
# finetuning per {objective, backbone, label fraction, seed}. Interrupted jobs resume from the
# resume.pt they leave in their run folder.


rule pretrain:
    input:
        cache=CACHE,
    output:
        model=f"{RESULTS}/pretrain/{{objective}}_{{backbone}}_s{{seed}}/model.pt",
        metrics=f"{RESULTS}/pretrain/{{objective}}_{{backbone}}_s{{seed}}/metrics.csv",
    log:
        "logs/pretrain/{objective}_{backbone}_s{seed}.log",
    benchmark:
        "benchmarks/pretrain/{objective}_{backbone}_s{seed}.tsv"
    conda:
        "../envs/equihand.yaml"
    threads: job_threads("pretrain")
    resources:
        mem_mb=job_resource("pretrain", "mem_mb"),
        runtime=job_resource("pretrain", "runtime"),
        gpu=job_resource("pretrain", "gpu"),
        # unset (None) when empty/0: any GPU model, and --cpus-per-task=threads
        gpu_model=job_resource("pretrain", "gpu_model") or None,
        cpus_per_gpu=job_resource("pretrain", "cpus_per_gpu") or None,
    params:
        config=cli_config("augment", "model", "pretrain", "train", "device"),
        out=output_folder,
    shell:
        "equihand pretrain {params.config} --set train.threads={threads} --set model.backbone={wildcards.backbone} --objective {wildcards.objective} --seed {wildcards.seed} --data {input.cache} --out {params.out} > {log} 2>&1"


rule finetune:
    input:
        unpack(finetune_input),
    output:
        model=f"{RESULTS}/finetune/{{objective}}_{{backbone}}_f{{fraction}}_s{{seed}}/model.pt",
        metrics=f"{RESULTS}/finetune/{{objective}}_{{backbone}}_f{{fraction}}_s{{seed}}/metrics.csv",
    log:
        "logs/finetune/{objective}_{backbone}_f{fraction}_s{seed}.log",
    benchmark:
        "benchmarks/finetune/{objective}_{backbone}_f{fraction}_s{seed}.tsv"
    conda:
        "../envs/equihand.yaml"
    threads: job_threads("finetune")
    resources:
        mem_mb=job_resource("finetune", "mem_mb"),
        runtime=job_resource("finetune", "runtime"),
        gpu=job_resource("finetune", "gpu"),
        # unset (None) when empty/0: any GPU model, and --cpus-per-task=threads
        gpu_model=job_resource("finetune", "gpu_model") or None,
        cpus_per_gpu=job_resource("finetune", "cpus_per_gpu") or None,
    params:
        config=cli_config("augment", "model", "finetune", "train", "device"),
        pretrained=pretrained_arg,
        out=output_folder,
    shell:
        "equihand finetune {params.config} --set train.threads={threads} --set model.backbone={wildcards.backbone} --pretrained {params.pretrained} --fraction {wildcards.fraction} --seed {wildcards.seed} --data {input.cache} --out {params.out} > {log} 2>&1"
