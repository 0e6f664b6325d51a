import * as T from "./throughput.ts"
console.log(await T.ties(16 * 1024 * 1024, 3, 0.2, 2))
