// One run of the decode benchmark in a process of its own (see decode.ts):
// `node --import tsx bench/decode-child.ts <chorus|before|socketio> <count>`
// prints the result as one line of JSON.
import { runContestant, type Contestant } from "./decode.js";

const [which, count] = process.argv.slice(2);
if (which !== "chorus" && which !== "before" && which !== "socketio") throw new Error(`unknown contestant ${which}`);
const result = await runContestant(which as Contestant, Number(count));
console.log(JSON.stringify(result));
