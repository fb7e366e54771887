/* Our case states as Taobao/Tmall refund statuses and Pinduoduo after_sales_status codes (pure). */
#include "arbiter/platform.h"

#include <stddef.h>

/* Pinduoduo after_sales_status codes (pdd.refund.list.increment.get, as
 * its field description lists them: 0 none, 2-18 refunds, returns and
 * exchanges, 21-25 repairs, 27 awaiting the buyer's receipt, 31-32). The list
 * has no code for "returned goods on their way to the merchant": that is
 * the merchant's move again, the same code as the request awaiting it. */
enum {
	PDD_NONE = -1,
	PDD_REFUND_WAIT_SELLER = 2,      /* 买家申请退款，待商家处理 */
	PDD_RETURN_WAIT_SELLER = 3,      /* 退货退款，待商家处理 */
	PDD_REFUNDING = 4,               /* 商家同意退款，退款中 */
	PDD_REJECTED_WAIT_BUYER = 6,     /* 驳回退款，待买家处理 */
	PDD_WAIT_BUYER_SHIP = 7,         /* 已同意退货退款，待用户发货 */
	PDD_PLATFORM_HANDLING = 8,       /* 平台处理中 */
	PDD_PLATFORM_REFUSED = 9,        /* 平台拒绝退款，退款关闭 */
	PDD_SUCCESS = 10,                /* 退款成功 */
	PDD_BUYER_CANCELLED = 11,        /* 买家撤销 */
	PDD_BUYER_OVERDUE = 12,          /* 买家逾期未处理，退款失败 */
	PDD_EXCHANGE_WAIT_SELLER = 14,   /* 换货补寄待商家处理 */
	PDD_EXCHANGE_DONE = 16,          /* 换货补寄成功 */
	PDD_EXCHANGE_WAIT_CONFIRM = 18,  /* 换货补寄待用户确认完成 */
	PDD_REPAIR_WAIT_SELLER = 21,     /* 待商家同意维修 */
	PDD_REPAIR_DONE = 25,            /* 维修成功 */
	PDD_RESEND_WAIT_SELLER = 32,     /* 补寄待商家发货 */
};

/* What a request awaiting the seller is on Pinduoduo, by what it asks for. */
static int pdd_waiting_seller(ar_kind kind)
{
	switch (kind) {
	case AR_KIND_REFUND: return PDD_REFUND_WAIT_SELLER;
	case AR_KIND_RETURN: return PDD_RETURN_WAIT_SELLER;
	case AR_KIND_EXCHANGE: return PDD_EXCHANGE_WAIT_SELLER;
	case AR_KIND_REPAIR: return PDD_REPAIR_WAIT_SELLER;
	default: return PDD_NONE;
	}
}

static void closed_status(fsm_outcome outcome, const char **tb, int *pdd)
{
	switch (outcome) {
	case FSM_OUTCOME_REFUNDED:
	case FSM_OUTCOME_PARTIALLY_REFUNDED:
		*tb = "SUCCESS";
		*pdd = PDD_SUCCESS;
		break;
	case FSM_OUTCOME_EXCHANGED:
	case FSM_OUTCOME_RESENT:
		*tb = "CLOSED";
		*pdd = PDD_EXCHANGE_DONE;
		break;
	case FSM_OUTCOME_REPAIRED:
		*tb = "CLOSED";
		*pdd = PDD_REPAIR_DONE;
		break;
	case FSM_OUTCOME_WITHDRAWN:
		*tb = "CLOSED";
		*pdd = PDD_BUYER_CANCELLED;
		break;
	case FSM_OUTCOME_EXPIRED:
		*tb = "CLOSED";
		*pdd = PDD_BUYER_OVERDUE;
		break;
	default:
		*tb = "CLOSED";
		*pdd = PDD_PLATFORM_REFUSED;
		break;
	}
}

void platform_status(ar_kind kind, fsm_state state, fsm_outcome outcome, const char **taobao,
		     int *pdd)
{
	*taobao = NULL;
	*pdd = PDD_NONE;
	/* complaints are no refund on either platform */
	if (kind == AR_KIND_COMPLAINT || (unsigned)kind >= AR_KIND__COUNT)
		return;
	switch (state) {
	case FSM_STATE_AWAITING_SELLER:
	case FSM_STATE_AWAITING_SELLER_REPLY:
		*taobao = "WAIT_SELLER_AGREE";
		*pdd = pdd_waiting_seller(kind);
		break;
	case FSM_STATE_AWAITING_BUYER_RETURN:
		*taobao = "WAIT_BUYER_RETURN_GOODS";
		*pdd = PDD_WAIT_BUYER_SHIP;
		break;
	case FSM_STATE_AWAITING_SELLER_RECEIPT:
		*taobao = "WAIT_SELLER_CONFIRM_GOODS";
		*pdd = pdd_waiting_seller(kind);
		break;
	case FSM_STATE_AWAITING_BUYER_REPLY:
		*taobao = "SELLER_REFUSE_BUYER";
		*pdd = PDD_REJECTED_WAIT_BUYER;
		break;
	case FSM_STATE_IN_ARBITRATION:
		/* Taobao keeps the refused status while its staff step in */
		*taobao = "SELLER_REFUSE_BUYER";
		*pdd = PDD_PLATFORM_HANDLING;
		break;
	case FSM_STATE_REFUND_PENDING:
		/* agreed: Taobao shows success once the seller agrees (Alipay
		 * moves the money); Pinduoduo shows the refund under way */
		*taobao = "SUCCESS";
		*pdd = PDD_REFUNDING;
		break;
	case FSM_STATE_REFUNDED:
		*taobao = "SUCCESS";
		*pdd = PDD_SUCCESS;
		break;
	case FSM_STATE_REPLACEMENT_PENDING:
	case FSM_STATE_REPAIR_PENDING:
		*pdd = state == FSM_STATE_REPAIR_PENDING ? PDD_REPAIR_WAIT_SELLER
							  : PDD_EXCHANGE_WAIT_SELLER;
		break;
	case FSM_STATE_RESEND_PENDING:
		*pdd = PDD_RESEND_WAIT_SELLER;
		break;
	case FSM_STATE_AWAITING_BUYER_CONFIRM:
		*pdd = PDD_EXCHANGE_WAIT_CONFIRM;
		break;
	case FSM_STATE_CLOSED:
		closed_status(outcome, taobao, pdd);
		break;
	default:
		break;
	}
	/* Taobao's refund statuses cover refunds and returns; its exchanges
	 * and repairs are other records */
	if (kind == AR_KIND_EXCHANGE || kind == AR_KIND_REPAIR)
		*taobao = NULL;
}
