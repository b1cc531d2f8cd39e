"""The core: datasets (:mod:`.data`, with the registry and file readers in :mod:`.datasets`),
architectures as torch modules (:mod:`.nets`), real-data training (:mod:`.training`) and
checkpoints (:mod:`.checkpoint`)."""
