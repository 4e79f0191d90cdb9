/** Where `buildServer` writes the compiled server. */
export declare const SERVER_BUNDLE: string;
/** Compiles the server into SERVER_BUNDLE; resolves to that path. */
export declare function buildServer(): Promise<string>;
