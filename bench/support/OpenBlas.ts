// OpenBLAS for the PyTorch peers of bench/train and bench/lm: Debian's torch calls whatever
// libblas.so.3 the loader finds (the slow reference BLAS unless OpenBLAS is installed), so a fair
// peer runs with OpenBLAS's folder first on LD_LIBRARY_PATH.
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"

/**
 * A folder with OpenBLAS's libblas.so.3: `CRUCIBLE_BENCH_OPENBLAS` if it holds one, else the one
 * unpacked under `out/.openblas` (from the apt cache's libopenblas0-pthread package, unpacked
 * there on first use); undefined when neither is there.
 */
export const openBlasDir = (out: string): string | undefined => {
  const given = process.env["CRUCIBLE_BENCH_OPENBLAS"]
  if (given !== undefined && fs.existsSync(path.join(given, "libblas.so.3"))) return given
  const target = path.join(out, ".openblas")
  const lib = path.join(target, "usr", "lib", "x86_64-linux-gnu", "openblas-pthread")
  if (fs.existsSync(path.join(lib, "libblas.so.3"))) return lib
  const cache = "/var/cache/apt/archives"
  const deb = fs.existsSync(cache) ? fs.readdirSync(cache).find((f) => /^libopenblas0-pthread_.*_amd64\.deb$/.test(f)) : undefined
  if (deb === undefined) return undefined
  try {
    fs.mkdirSync(target, { recursive: true })
    execFileSync("dpkg-deb", ["-x", path.join(cache, deb), target])
    return fs.existsSync(path.join(lib, "libblas.so.3")) ? lib : undefined
  } catch {
    return undefined
  }
}
