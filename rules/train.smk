# Training: pretraining per {objective, backbone, seed} (none has no pretraining job), then
# finetuning per {objective, backbone, label fraction, seed}. Interrupted jobs resume from the
# resume.pt they leave in their run folder.


rule pretrain:
    input:
        cache=CACHE,
    output:
        model=run_file("pretrain", "model.pt"),
        metrics=run_file("pretrain", "metrics.csv"),
    log:
        run_log("pretrain"),
    benchmark:
        run_benchmark("pretrain")
    conda:
        "../envs/equihand.yaml"
    threads: job_threads("pretrain")
    resources:
        **job_resources("pretrain"),
    params:
        config=cli_config("augment", "model", "pretrain", "train", "device"),
        launch=launcher("pretrain"),
        out=output_folder,
    shell:
        "{params.launch}equihand pretrain {params.config}"
        " --set train.threads={threads}"
        " --set model.backbone={wildcards.backbone}"
        " --objective {wildcards.objective}"
        " --seed {wildcards.seed}"
        " --data {input.cache}"
        " --out {params.out}"
        " > {log} 2>&1"


rule finetune:
    input:
        unpack(finetune_input),
    output:
        model=run_file("finetune", "model.pt"),
        metrics=run_file("finetune", "metrics.csv"),
    log:
        run_log("finetune"),
    benchmark:
        run_benchmark("finetune")
    conda:
        "../envs/equihand.yaml"
    threads: job_threads("finetune")
    resources:
        **job_resources("finetune"),
    params:
        config=cli_config("augment", "model", "finetune", "train", "device"),
        pretrained=pretrained_arg,
        launch=launcher("finetune"),
        out=output_folder,
    shell:
        "{params.launch}equihand finetune {params.config}"
        " --set train.threads={threads}"
        " --set model.backbone={wildcards.backbone}"
        " --pretrained {params.pretrained}"
        " --fraction {wildcards.fraction}"
        " --seed {wildcards.seed}"
        " --data {input.cache}"
        " --out {params.out}"
        " > {log} 2>&1"
