// Who this tab is: the app's own login stands here (?user=…, or a random name).
const name = new URLSearchParams(location.search).get("user") ?? `guest-${Math.random().toString(36).slice(2, 6)}`;
export const user = { id: name, name };
export const useAuth = () => ({ user });
