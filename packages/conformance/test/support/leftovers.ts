/** What an account still has after a run: its listed subscriptions and its own export schemas. */
export async function leftoversOf(
  baseUrl: string,
  apiKey: string,
  options: { exportSchemas: boolean } = { exportSchemas: true },
): Promise<{ subscriptions: number; exportSchemas: number }> {
  const headers = { 'x-api-key': apiKey }
  const subscriptions = (await (
    await fetch(`${baseUrl}/v1/subscriptions?limit=100`, { headers })
  ).json()) as { total: number }
  let exportSchemas = 0
  if (options.exportSchemas) {
    const schemas = (await (await fetch(`${baseUrl}/v1/export-schemas`, { headers })).json()) as {
      is_built_in: boolean
    }[]
    exportSchemas = schemas.filter((schema) => !schema.is_built_in).length
  }
  return { subscriptions: subscriptions.total, exportSchemas }
}
