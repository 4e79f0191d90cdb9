export { runExample, startExample, type RunningExample, type ExampleOptions } from "./example.js";
