/** RFC 3339 in UTC with `Z`, as every timestamp of a resource is shown. */
export function toRfc3339(epochMs: number | bigint): string {
  return new Date(Number(epochMs)).toISOString()
}
