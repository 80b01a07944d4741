"""One module per technique; each registers its experiments with `frugalnn.report.experiment`.
`frugalnn report` imports every module here."""
