/* libFuzzer: policy documents through policy_load; an accepted policy must re-load from its own canonical text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arbiter/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ar_err err;
	policy *p, *again;
	json_t *doc;
	const char *text;
	int64_t ms;
	char *s;

	ar_err_init(&err);
	p = policy_load((const char *)data, size, &err);
	if (!p) {
		if (!ar_err_is_set(&err))
			__builtin_trap(); /* a refusal must say why */
		return 0;
	}
	(void)policy_version(p);
	(void)policy_duration(p, "seller_response", NULL, &ms);
	(void)policy_duration(p, "complaint_first_response_major", "S-1", &ms);
	doc = policy_to_json(p);
	s = json_dumps(doc, JSON_COMPACT);
	free(s);
	json_decref(doc);
	text = policy_text(p);
	ar_err_init(&err);
	again = policy_load(text, strlen(text), &err);
	if (!again)
		__builtin_trap(); /* the canonical form of a valid policy is valid */
	if (strcmp(policy_text(again), text) != 0)
		__builtin_trap(); /* and canonical: loading it changes nothing */
	policy_free(again);
	policy_free(p);
	return 0;
}
