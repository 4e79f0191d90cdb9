import { createRegistry, toBinary, type DescFile } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import type { ServerReflectionRequest } from "../../../gen/grpc/reflection/v1/reflection_pb.js";

/**
 * gRPC server reflection (`grpc.reflection.v1` and `v1alpha`): the
 * services this server offers, and the descriptors of the files that
 * define them, from the generated code it is built with. So `buf curl`,
 * grpcurl, grpcui and Postman can list and call the services with nothing
 * but the URL.
 */
export function reflectionService(files: DescFile[], services: string[]) {
  const registry = createRegistry(...closure(files));
  const byName = new Map(closure(files).map((f) => [f.proto.name, f]));

  /** The file and everything it imports, each once, the file first. */
  const withImports = (file: DescFile): Uint8Array[] => closure([file]).map((f) => toBinary(FileDescriptorProtoSchema, f.proto));

  const fileOfSymbol = (symbol: string): DescFile | undefined => {
    const name = symbol.startsWith(".") ? symbol.slice(1) : symbol;
    const direct = registry.get(name);
    if (direct) return direct.file;
    // A method (package.Service.Method) or a field: its parent's file.
    const parent = name.slice(0, name.lastIndexOf("."));
    const owner = parent ? registry.get(parent) : undefined;
    if (owner) return owner.file;
    for (const file of byName.values()) if (file.proto.package === name) return file;
    return undefined;
  };

  const answer = (req: ServerReflectionRequest) => {
    const request = req.messageRequest;
    const notFound = (what: string) => ({ case: "errorResponse" as const, value: { errorCode: Code.NotFound, errorMessage: `${what} is not known to this server` } });
    let response;
    switch (request.case) {
      case "listServices":
        response = { case: "listServicesResponse" as const, value: { service: services.map((name) => ({ name })) } };
        break;
      case "fileByFilename": {
        const file = byName.get(request.value);
        response = file ? { case: "fileDescriptorResponse" as const, value: { fileDescriptorProto: withImports(file) } } : notFound(`file "${request.value}"`);
        break;
      }
      case "fileContainingSymbol": {
        const file = fileOfSymbol(request.value);
        response = file ? { case: "fileDescriptorResponse" as const, value: { fileDescriptorProto: withImports(file) } } : notFound(`symbol "${request.value}"`);
        break;
      }
      case "allExtensionNumbersOfType":
        // None of these services' messages is extended.
        response = registry.getMessage(request.value) ? { case: "allExtensionNumbersResponse" as const, value: { baseTypeName: request.value, extensionNumber: [] } } : notFound(`type "${request.value}"`);
        break;
      case "fileContainingExtension":
        response = notFound(`extension ${request.value.extensionNumber} of "${request.value.containingType}"`);
        break;
      default:
        response = { case: "errorResponse" as const, value: { errorCode: Code.InvalidArgument, errorMessage: "the request asks nothing: set one of its fields" } };
    }
    return { validHost: req.host, originalRequest: req, messageResponse: response };
  };

  return {
    async *serverReflectionInfo(requests: AsyncIterable<ServerReflectionRequest>) {
      for await (const req of requests) yield answer(req);
    },
  };
}

/** The files and every file they import, each once, in the order met. */
function closure(files: DescFile[]): DescFile[] {
  const seen = new Map<string, DescFile>();
  const visit = (file: DescFile) => {
    if (seen.has(file.proto.name)) return;
    seen.set(file.proto.name, file);
    for (const dependency of file.dependencies) visit(dependency);
  };
  files.forEach(visit);
  return [...seen.values()];
}
