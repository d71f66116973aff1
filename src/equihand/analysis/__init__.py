"""What a researcher reads: tables, figures, claims and the written report, from the runs'
metrics, with paired bootstrap statistics over seeds."""
