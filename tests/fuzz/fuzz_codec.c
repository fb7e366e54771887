/* libFuzzer: request bytes -> codec_parse_body -> codec_decode_case -> canonical JSON and a policy decision, each written by codec_dumps and checked against jansson's dump. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arbiter/codec.h"
#include "arbiter/policy.h"

#ifndef FUZZ_POLICY_PATH
#define FUZZ_POLICY_PATH "deploy/policy/default.json"
#endif

static policy *shipped; /* the shipped policy, loaded once; NULL if unreadable */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	FILE *f = fopen(FUZZ_POLICY_PATH, "rb");
	char *text;
	long n;
	ar_err err;

	(void)argc;
	(void)argv;
	if (!f)
		return 0;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0 &&
	    (text = malloc((size_t)n)) != NULL) {
		if (fread(text, 1, (size_t)n, f) == (size_t)n) {
			ar_err_init(&err);
			shipped = policy_load(text, (size_t)n, &err);
		}
		free(text);
	}
	fclose(f);
	return 0;
}

/* codec_dumps writes what jansson writes, byte for byte, for any document. */
static void dump_both(const json_t *j)
{
	char *mine = codec_dumps(j);
	char *theirs = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);

	if (!mine != !theirs || (mine && strcmp(mine, theirs) != 0))
		__builtin_trap();
	free(mine);
	free(theirs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ar_err err;
	ar_case_input in;
	json_t *root, *order, *evidence, *dec;
	ar_decision d;

	ar_err_init(&err);
	root = codec_parse_body((const char *)data, size, &err);
	if (!root) {
		if (!ar_err_is_set(&err))
			__builtin_trap(); /* a refusal must say why */
		return 0;
	}
	if (!json_is_object(root))
		__builtin_trap(); /* the contract: a parsed body is an object */
	dump_both(root);
	ar_err_init(&err);
	if (codec_decode_case(root, &in, &err)) {
		order = codec_order_to_json(&in.order);
		evidence = codec_case_input_evidence_to_json(&in);
		dump_both(order);
		dump_both(evidence);
		json_decref(order);
		json_decref(evidence);
		if (shipped) {
			ar_err_init(&err);
			if (policy_adjudicate(shipped, &in, NULL, 1767225600000LL, &d, &err)) {
				dec = policy_decision_to_json(&d);
				dump_both(dec);
				json_decref(dec);
			}
		}
	} else if (!ar_err_is_set(&err)) {
		__builtin_trap();
	}
	json_decref(root);
	return 0;
}
