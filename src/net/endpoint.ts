// How an endpoint is written in flags, messages and logs: HOST:PORT, IPv6 in brackets.

export function formatEndpoint(endpoint: { readonly host: string; readonly port: number }): string {
  return endpoint.host.includes(':') ? `[${endpoint.host}]:${endpoint.port}` : `${endpoint.host}:${endpoint.port}`
}
