# What a researcher reads (equihand.analysis): the ablation table over seeds, the figures, the
# part-aware probe's table and claims, and the written report, from the evaluations, probes and
# training logs. Outputs marked report() appear in `snakemake --report` with the captions in
# report/.


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
        # read by the captions in report/ (one source: equihand.vocabulary.FIGURES)
        captions=vocabulary.FIGURES,
    shell:
        "equihand figures {params.config}"
        " --metrics {input.metrics}"
        " --out {params.out}"
        " > {log} 2>&1"


rule part_aware:
    input:
        all_probes(),
    output:
        csv=report(
            f"{TABLES_DIR}/part_aware.csv",
            caption="../report/part_aware_table.rst",
            category="Tables",
        ),
        md=f"{TABLES_DIR}/part_aware.md",
        claims=f"{TABLES_DIR}/part_aware_claims.csv",
        png=report(
            f"{FIGURES_DIR}/{vocabulary.PART_AWARE_FIGURE}.png",
            caption="../report/part_aware.rst",
            category="Figures",
        ),
        pdf=f"{FIGURES_DIR}/{vocabulary.PART_AWARE_FIGURE}.pdf",
    log:
        "logs/part_aware.log",
    conda:
        "../envs/equihand.yaml"
    params:
        config=cli_config("report"),
        table=output_stem("csv"),
        figure=output_stem("png"),
    shell:
        "equihand part-aware {params.config}"
        " --runs {input}"
        " --table {params.table}"
        " --figure {params.figure}"
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
