# What a researcher reads: the figures and the written report, from the evaluations and the
# training logs. Both outputs appear in `snakemake --report` with the captions in report/.


rule figures:
    # Beside each metrics.json the step also reads pck.csv, per_joint.csv and qualitative.png,
    # and the training curves (metrics.csv) of the runs that metrics.json names: outputs of the
    # same evaluate job or of the training jobs upstream of it, so the DAG already makes them.
    input:
        metrics=all_evaluations(),
    output:
        [
            report(
                f"{FIGURES_DIR}/{name}.png",
                caption=f"../report/{name}.rst",
                category="Figures",
            )
            for name in FIGURE_NAMES
        ],
        pdf=expand(f"{FIGURES_DIR}/{{name}}.pdf", name=FIGURE_NAMES),
    log:
        "logs/figures.log",
    conda:
        "../envs/equihand.yaml"
    params:
        config=cli_config("report"),
        out=output_folder,
    shell:
        "equihand figures {params.config}"
        " --metrics {input.metrics}"
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


rule report:
    input:
        **part_aware_inputs(),
        runs=rules.aggregate.output.runs,
        reference=rules.reference.output[0],
        # the PNGs the report embeds; `--figures` is their folder
        figures=expand(f"{FIGURES_DIR}/{{name}}.png", name=FIGURE_NAMES),
    output:
        md=f"{RESULTS}/report/ablation.md",
        html=report(
            f"{RESULTS}/report/ablation.html",
            caption="../report/ablation_report.rst",
            category="Report",
        ),
        comparisons=f"{RESULTS}/report/comparisons.csv",
    log:
        "logs/report.log",
    conda:
        "../envs/equihand.yaml"
    params:
        config=cli_config(
            "synth", "prepare", "model", "study", "pretrain", "finetune", "report"
        ),
        figures=input_folder("figures"),
        part_aware=part_aware_arg,
        out=output_folder,
    shell:
        "equihand report {params.config}"
        " --runs {input.runs}"
        " --figures {params.figures}"
        " --reference {input.reference}"
        " {params.part_aware}"
        " --out {params.out}"
        " > {log} 2>&1"
