"""Where the GTN teacher meets datasets and architectures: teacher shapes and learner factories
(:mod:`.shapes`), and teacher training as a typed call (:mod:`.run`)."""
