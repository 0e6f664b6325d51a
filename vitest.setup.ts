// Property tests are seeded like every other random source of the project: a failure reproduces.
import fc from "fast-check"

fc.configureGlobal({ seed: 20261201 })
