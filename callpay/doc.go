// Package callpay pays for calls to served models without a transaction
// per call. A caller locks a budget once with a provider, in the 2-of-3
// escrow of package settlement (caller, provider, arbiter), and tells the
// provider of it on wire.BudgetProtocol. Each call then carries a voucher,
// signed by the caller, for the cumulative amount due on the budget. The
// provider settles each budget once, with its latest voucher: an
// ArbiterSplit pays it the calls it served and refunds the rest, and the
// arbiter co-signs it only for an amount the caller's voucher covers. A
// budget so costs two transactions whatever the number of calls: the lock
// and the split (a refund after the deadline instead, when no call was
// served).
//
// Keeper is the provider's side: it takes budgets, checks and counts the
// vouchers of calls, and settles. Payer is the caller's side: it opens
// budgets and signs vouchers. Both keep their budgets in a bbolt database,
// so that a restart loses no budget.
package callpay
