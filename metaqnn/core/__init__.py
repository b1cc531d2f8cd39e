"""The core: datasets (:mod:`.data`), architectures as torch modules (:mod:`.nets`), real-data
training (:mod:`.training`) and checkpoints (:mod:`.checkpoint`)."""
