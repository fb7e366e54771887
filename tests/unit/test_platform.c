/* Unit tests for the platform vocabulary: our states as Taobao refund statuses and Pinduoduo after_sales_status codes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "arbiter/platform.h"

typedef struct {
	ar_kind kind;
	fsm_state state;
	fsm_outcome outcome;
	const char *taobao;   /* NULL: none */
	int pdd;              /* -1: none */
} row;

/* README "Platform vocabulary" is this table. */
static const row TABLE[] = {
	{ AR_KIND_REFUND, FSM_STATE_AWAITING_SELLER, FSM_OUTCOME_NONE, "WAIT_SELLER_AGREE", 2 },
	{ AR_KIND_RETURN, FSM_STATE_AWAITING_SELLER, FSM_OUTCOME_NONE, "WAIT_SELLER_AGREE", 3 },
	{ AR_KIND_EXCHANGE, FSM_STATE_AWAITING_SELLER, FSM_OUTCOME_NONE, NULL, 14 },
	{ AR_KIND_REPAIR, FSM_STATE_AWAITING_SELLER, FSM_OUTCOME_NONE, NULL, 21 },
	{ AR_KIND_RETURN, FSM_STATE_AWAITING_SELLER_REPLY, FSM_OUTCOME_NONE, "WAIT_SELLER_AGREE", 3 },
	{ AR_KIND_RETURN, FSM_STATE_AWAITING_BUYER_RETURN, FSM_OUTCOME_NONE, "WAIT_BUYER_RETURN_GOODS", 7 },
	{ AR_KIND_RETURN, FSM_STATE_AWAITING_SELLER_RECEIPT, FSM_OUTCOME_NONE, "WAIT_SELLER_CONFIRM_GOODS", 3 },
	{ AR_KIND_REFUND, FSM_STATE_AWAITING_BUYER_REPLY, FSM_OUTCOME_NONE, "SELLER_REFUSE_BUYER", 6 },
	{ AR_KIND_REFUND, FSM_STATE_IN_ARBITRATION, FSM_OUTCOME_NONE, "SELLER_REFUSE_BUYER", 8 },
	{ AR_KIND_REFUND, FSM_STATE_REFUND_PENDING, FSM_OUTCOME_NONE, "SUCCESS", 4 },
	{ AR_KIND_REFUND, FSM_STATE_REFUNDED, FSM_OUTCOME_REFUNDED, "SUCCESS", 10 },
	{ AR_KIND_REFUND, FSM_STATE_RESEND_PENDING, FSM_OUTCOME_NONE, NULL, 32 },
	{ AR_KIND_REFUND, FSM_STATE_AWAITING_BUYER_CONFIRM, FSM_OUTCOME_NONE, NULL, 18 },
	{ AR_KIND_EXCHANGE, FSM_STATE_REPLACEMENT_PENDING, FSM_OUTCOME_NONE, NULL, 14 },
	{ AR_KIND_REPAIR, FSM_STATE_REPAIR_PENDING, FSM_OUTCOME_NONE, NULL, 21 },
	{ AR_KIND_REFUND, FSM_STATE_CLOSED, FSM_OUTCOME_PARTIALLY_REFUNDED, "SUCCESS", 10 },
	{ AR_KIND_REFUND, FSM_STATE_CLOSED, FSM_OUTCOME_REJECTED, "CLOSED", 9 },
	{ AR_KIND_REFUND, FSM_STATE_CLOSED, FSM_OUTCOME_WITHDRAWN, "CLOSED", 11 },
	{ AR_KIND_RETURN, FSM_STATE_CLOSED, FSM_OUTCOME_EXPIRED, "CLOSED", 12 },
	{ AR_KIND_REFUND, FSM_STATE_CLOSED, FSM_OUTCOME_RESENT, "CLOSED", 16 },
	{ AR_KIND_EXCHANGE, FSM_STATE_CLOSED, FSM_OUTCOME_EXCHANGED, NULL, 16 },
	{ AR_KIND_REPAIR, FSM_STATE_CLOSED, FSM_OUTCOME_REPAIRED, NULL, 25 },
	{ AR_KIND_COMPLAINT, FSM_STATE_AWAITING_AGENT, FSM_OUTCOME_NONE, NULL, -1 },
	{ AR_KIND_COMPLAINT, FSM_STATE_CLOSED, FSM_OUTCOME_RESOLVED, NULL, -1 },
};

static void test_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(TABLE) / sizeof(TABLE[0]); i++) {
		const row *w = &TABLE[i];
		const char *tb = "unset";
		int pdd = -2;

		platform_status(w->kind, w->state, w->outcome, &tb, &pdd);
		if (pdd != w->pdd || (tb == NULL) != (w->taobao == NULL) ||
		    (tb && strcmp(tb, w->taobao) != 0))
			fail_msg("row %zu (%s %s %s): got %s %d, want %s %d", i, ar_kind_name(w->kind),
				 fsm_state_name(w->state), fsm_outcome_name(w->outcome),
				 tb ? tb : "null", pdd, w->taobao ? w->taobao : "null", w->pdd);
	}
}

/* Every (kind, state, outcome) answers within the platforms' vocabularies. */
static void test_total(void **state)
{
	static const char *const tb_names[] = { "WAIT_SELLER_AGREE", "WAIT_BUYER_RETURN_GOODS",
		"WAIT_SELLER_CONFIRM_GOODS", "SELLER_REFUSE_BUYER", "CLOSED", "SUCCESS" };
	static const int pdd_codes[] = { -1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12, 14, 16, 18, 21, 25, 32 };

	(void)state;
	for (int k = 0; k < AR_KIND__COUNT; k++)
		for (int s = 0; s < FSM_STATE__COUNT; s++)
			for (int o = 0; o < FSM_OUTCOME__COUNT; o++) {
				const char *tb;
				int pdd;
				bool ok_tb = false, ok_pdd = false;

				platform_status((ar_kind)k, (fsm_state)s, (fsm_outcome)o, &tb, &pdd);
				for (size_t i = 0; i < sizeof(tb_names) / sizeof(tb_names[0]); i++)
					ok_tb |= tb == NULL || strcmp(tb, tb_names[i]) == 0;
				for (size_t i = 0; i < sizeof(pdd_codes) / sizeof(pdd_codes[0]); i++)
					ok_pdd |= pdd == pdd_codes[i];
				assert_true(ok_tb && ok_pdd);
			}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_total),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
