import type { Command } from '../command.js'
import { formatDetails } from '../format-table.js'

export const billingCommands: Readonly<Record<string, Command>> = {
  summary: {
    summary: "Show the account's access status and usage this period",
    async run({ client, call, print }) {
      const summary = await client.billing.summary(call)
      print(summary, () =>
        formatDetails([
          ['Access status', summary.access_status],
          ['Plan', summary.plan_code ?? '-'],
          ['Period ends', summary.current_period_end ?? '-'],
          ['Grace until', summary.grace_until ?? '-'],
          ['Extra stream minutes', String(summary.usage.extra_stream_minutes_total)],
          ['Export GB', summary.usage.export_gb_total],
          ['Export GB extra', String(summary.usage.export_gb_extra)],
        ]),
      )
      return undefined
    },
  },
}
