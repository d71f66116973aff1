"""What a researcher reads: tables, figures, claims and the written report, from the runs'
metrics, with Holm-corrected paired tests over seeds."""
