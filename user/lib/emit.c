// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * emit.c: JSON and YAML output of a json-c tree (see emit.h). YAML goes through libyaml's
 * emitter event by event, so quoting and escaping are libyaml's: strings that would read back
 * as numbers, booleans or null are quoted, everything else is plain where YAML allows.
 */
#include <string.h>
#include <yaml.h>

#include "emit.h"

int out_fmt_parse(const char *s)
{
	if (!s || !strcmp(s, "text"))
		return OUT_TEXT;
	if (!strcmp(s, "wide"))
		return OUT_WIDE;
	if (!strcmp(s, "json"))
		return OUT_JSON;
	if (!strcmp(s, "yaml"))
		return OUT_YAML;
	return -1;
}

void jset_str(struct json_object *obj, const char *key, const char *val)
{
	json_object_object_add(obj, key, val ? json_object_new_string(val) : NULL);
}

void jset_int(struct json_object *obj, const char *key, long long val)
{
	json_object_object_add(obj, key, json_object_new_int64(val));
}

void jset_bool(struct json_object *obj, const char *key, int val)
{
	json_object_object_add(obj, key, json_object_new_boolean(val));
}

void jset_double(struct json_object *obj, const char *key, double val)
{
	json_object_object_add(obj, key, json_object_new_double(val));
}

static int file_write(void *data, unsigned char *buf, size_t size)
{
	return fwrite(buf, 1, size, data) == size;
}

/* A string scalar: plain when it cannot be mistaken for another type on reading back. */
static int emit_string(yaml_emitter_t *em, const char *s)
{
	static const char *const special[] = {
	    "",	     "~",   "null", "Null", "NULL", "true", "True", "TRUE", "false", "False",
	    "FALSE", "yes", "Yes",  "YES",  "no",   "No",   "NO",   "on",   "On",    "ON",
	    "off",   "Off", "OFF",  "y",    "Y",    "n",    "N",    NULL};
	yaml_scalar_style_t style = YAML_ANY_SCALAR_STYLE;
	yaml_event_t ev;
	char *end;

	for (int i = 0; special[i]; i++)
		if (!strcmp(s, special[i]))
			style = YAML_DOUBLE_QUOTED_SCALAR_STYLE;
	(void)strtod(s, &end);
	if (*s && !*end)
		style = YAML_DOUBLE_QUOTED_SCALAR_STYLE; /* a number as text */
	yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)strlen(s), 1, 1,
				     style);
	return yaml_emitter_emit(em, &ev);
}

static int emit_plain(yaml_emitter_t *em, const char *s)
{
	yaml_event_t ev;

	yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)strlen(s), 1, 1,
				     YAML_PLAIN_SCALAR_STYLE);
	return yaml_emitter_emit(em, &ev);
}

static int emit_node(yaml_emitter_t *em, struct json_object *o)
{
	yaml_event_t ev;
	int ok = 1;

	switch (json_object_get_type(o)) {
	case json_type_null:
		return emit_plain(em, "null");
	case json_type_boolean:
	case json_type_int:
	case json_type_double:
		return emit_plain(em, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	case json_type_string:
		return emit_string(em, json_object_get_string(o));
	case json_type_array:
		yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1,
						     json_object_array_length(o)
							 ? YAML_BLOCK_SEQUENCE_STYLE
							 : YAML_FLOW_SEQUENCE_STYLE);
		ok = yaml_emitter_emit(em, &ev);
		for (size_t i = 0; ok && i < json_object_array_length(o); i++)
			ok = emit_node(em, json_object_array_get_idx(o, i));
		yaml_sequence_end_event_initialize(&ev);
		return ok && yaml_emitter_emit(em, &ev);
	case json_type_object:
		yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1,
						    json_object_object_length(o)
							? YAML_BLOCK_MAPPING_STYLE
							: YAML_FLOW_MAPPING_STYLE);
		ok = yaml_emitter_emit(em, &ev);
		json_object_object_foreach(o, key, val)
		{
			ok = ok && emit_string(em, key) && emit_node(em, val);
		}
		yaml_mapping_end_event_initialize(&ev);
		return ok && yaml_emitter_emit(em, &ev);
	}
	return 0;
}

static int write_yaml(FILE *f, struct json_object *o)
{
	yaml_emitter_t em;
	yaml_event_t ev;
	int ok;

	if (!yaml_emitter_initialize(&em))
		return -1;
	yaml_emitter_set_output(&em, file_write, f);
	yaml_emitter_set_unicode(&em, 1);
	yaml_emitter_set_width(&em, -1);
	yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
	ok = yaml_emitter_emit(&em, &ev);
	yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1);
	ok = ok && yaml_emitter_emit(&em, &ev) && emit_node(&em, o);
	yaml_document_end_event_initialize(&ev, 1);
	ok = ok && yaml_emitter_emit(&em, &ev);
	yaml_stream_end_event_initialize(&ev);
	ok = ok && yaml_emitter_emit(&em, &ev);
	yaml_emitter_delete(&em);
	return ok ? 0 : -1;
}

int out_write(FILE *f, struct json_object *o, enum out_fmt fmt)
{
	if (fmt == OUT_YAML)
		return write_yaml(f, o);
	fprintf(f, "%s\n",
		json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
						      JSON_C_TO_STRING_SPACED |
						      JSON_C_TO_STRING_NOSLASHESCAPE));
	return ferror(f) ? -1 : 0;
}
