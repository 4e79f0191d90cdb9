// The reference components read the signed-in user from their auth hook;
// here the page's query string says who it is (and is its token).
const params = new URLSearchParams(location.search);
const user = { id: params.get("user") ?? "anonymous", name: params.get("name") ?? params.get("user") ?? "anonymous" };

export function useAuth(): { user: { id: string; name: string } } {
  return { user };
}
