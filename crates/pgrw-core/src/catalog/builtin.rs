//! Built-in knowledge of PostgreSQL functions and operators, as compile-time
//! hash tables (names are matched exactly: callers fold case first).

use crate::sql::wordtable::WordTable;

/// What a built-in primary-only function does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Builtin {
    /// Writes data or changes the server (large objects, dblink_exec, backups, slots, …).
    Writes,
    /// Sequence functions: write, and `currval`/`lastval` read per-session state.
    Sequence,
    /// Takes a session-level advisory lock.
    SessionLock,
    /// Takes a transaction-level advisory lock.
    XactLock,
    /// Releases session advisory locks.
    Unlock,
    /// `set_config`: a session change unless `is_local` is true.
    SetConfig,
    /// Changes session state (`setseed`, dblink connections).
    Session,
    /// Fails on a standby (`pg_current_wal_lsn`, `pg_export_snapshot`).
    PrimaryOnly,
    /// Asks about this server (its role, sessions, locks, replication, backend
    /// pid): the primary answers, so the application sees one database.
    NodeLocal,
}

impl Builtin {
    /// The kind a primary tag in [`FUNCTIONS`] stands for.
    fn from_tag(tag: u8) -> Builtin {
        match tag {
            b's' => Builtin::Sequence,
            b'l' => Builtin::SessionLock,
            b'x' => Builtin::XactLock,
            b'u' => Builtin::Unlock,
            b'c' => Builtin::SetConfig,
            b'e' => Builtin::Session,
            b'p' => Builtin::PrimaryOnly,
            b'n' => Builtin::NodeLocal,
            _ => Builtin::Writes,
        }
    }
}

/// Name prefixes of whole families of primary-only functions.
pub(super) static PRIMARY_PREFIXES: &[(&str, Builtin)] = &[
    ("binary_upgrade_", Builtin::Writes),
    ("dblink", Builtin::Writes),
    ("lo_", Builtin::Writes),
    ("pg_advisory", Builtin::SessionLock),
    ("pg_copy_", Builtin::Writes),
    ("pg_create_", Builtin::Writes),
    ("pg_drop_", Builtin::Writes),
    ("pg_logical_", Builtin::Writes),
    ("pg_replication_origin", Builtin::Writes),
    ("pg_stat_get_", Builtin::NodeLocal),
    ("pg_stat_reset", Builtin::Writes),
    ("pg_try_advisory", Builtin::SessionLock),
];

/// Every function pgrw knows by name, tagged. Primary-only built-ins say
/// why: `w` writes, `s` sequence, `l` session advisory lock, `x` transaction
/// advisory lock, `u` advisory unlock, `c` set_config, `e` session state, `p`
/// fails on a standby, `n` asks about this server (answered by the primary). `r`: a built-in (`pg_catalog`) function that only
/// reads. `o`: a function of a common extension (uuid-ossp, pgcrypto,
/// pg_trgm, unaccent) known to only read, trusted even though `pg_proc`
/// marks some of them volatile.
static FUNCTIONS: WordTable<1024> = WordTable::new(
    "
brin_desummarize_range:w brin_summarize_new_values:w brin_summarize_range:w currval:s dblink:w
dblink_close:e dblink_connect:e dblink_connect_u:e dblink_disconnect:e dblink_exec:w
dblink_fetch:e dblink_get_result:e dblink_is_busy:e dblink_open:e dblink_send_query:w
gin_clean_pending_list:w lastval:s lo_close:w lo_creat:w lo_create:w lo_export:w lo_from_bytea:w
lo_get:w lo_import:w lo_lseek:w lo_lseek64:w lo_open:w lo_put:w lo_tell:w lo_tell64:w
lo_truncate:w lo_truncate64:w lo_unlink:w loread:w lowrite:w nextval:s pg_advisory_lock:l
pg_advisory_lock_shared:l pg_advisory_unlock:u pg_advisory_unlock_all:u
pg_advisory_unlock_shared:u pg_advisory_xact_lock:x pg_advisory_xact_lock_shared:x
pg_backup_start:w pg_backup_stop:w pg_cancel_backend:w pg_create_restore_point:w
pg_current_wal_flush_lsn:p pg_current_wal_insert_lsn:p pg_current_wal_lsn:p pg_current_xact_id:w
pg_current_xact_id_if_assigned:w pg_current_xlog_insert_location:p pg_current_xlog_location:p
pg_drop_replication_slot:w pg_export_snapshot:p pg_file_rename:w pg_file_sync:w pg_file_unlink:w
pg_file_write:w pg_import_system_collations:w pg_log_backend_memory_contexts:w pg_nextoid:w
pg_notify:w pg_prewarm:w pg_promote:w pg_reload_conf:w pg_replication_slot_advance:w
pg_rotate_logfile:w pg_start_backup:w pg_stat_clear_snapshot:w pg_stat_force_next_flush:w
pg_stat_statements_reset:w pg_stop_backup:w pg_switch_wal:w pg_switch_xlog:w
pg_terminate_backend:w pg_try_advisory_lock:l pg_try_advisory_lock_shared:l
pg_try_advisory_xact_lock:x pg_try_advisory_xact_lock_shared:x pg_wal_replay_pause:w
pg_wal_replay_resume:w pg_xact_status:w set_config:c setseed:e setval:s txid_current:w
txid_current_if_assigned:w txid_status:w pg_lock_status:n pg_prepared_xact:n
pg_get_replication_slots:n pg_get_backend_memory_contexts:n pg_stat_get_wal_receiver:n abs:r acos:r acosd:r acosh:r age:r any_value:r
array_agg:r array_append:r array_cat:r array_dims:r array_fill:r array_length:r array_lower:r
array_ndims:r array_position:r array_positions:r array_prepend:r array_remove:r array_replace:r
array_sample:r array_shuffle:r array_to_json:r array_to_string:r array_to_tsvector:r
array_upper:r ascii:r asin:r asind:r asinh:r atan:r atan2:r atan2d:r atand:r atanh:r avg:r
bit_and:r bit_count:r bit_length:r bit_or:r bit_xor:r bool:r bool_and:r bool_or:r btrim:r
cardinality:r cbrt:r ceil:r ceiling:r char_length:r character_length:r chr:r clock_timestamp:r
col_description:r concat:r concat_ws:r convert:r convert_from:r convert_to:r corr:r cos:r cosd:r
cosh:r cot:r cotd:r count:r covar_pop:r covar_samp:r cume_dist:r current_database:r
current_query:r current_schema:r current_schemas:r current_setting:r currtid2:r date:r
date_bin:r date_part:r date_trunc:r daterange:r decode:r degrees:r dense_rank:r div:r encode:r
enum_first:r enum_last:r enum_range:r every:r exp:r factorial:r first_value:r float4:r float8:r
floor:r format:r format_type:r gcd:r gen_random_uuid:r generate_series:r generate_subscripts:r
get_bit:r get_byte:r has_any_column_privilege:r has_column_privilege:r has_database_privilege:r
has_foreign_data_wrapper_privilege:r has_function_privilege:r has_language_privilege:r
has_parameter_privilege:r has_schema_privilege:r has_sequence_privilege:r has_server_privilege:r
has_table_privilege:r has_tablespace_privilege:r has_type_privilege:r host:r hostmask:r
inet_client_addr:r inet_client_port:r inet_server_addr:r inet_server_port:r initcap:r int2:r int4:r int4range:r int8:r int8range:r
isempty:r isfinite:r json_agg:r json_array_elements:r json_array_elements_text:r
json_array_length:r json_build_array:r json_build_object:r json_each:r json_each_text:r
json_extract_path:r json_extract_path_text:r json_object:r json_object_agg:r json_object_keys:r
json_populate_record:r json_populate_recordset:r json_strip_nulls:r json_to_record:r
json_to_recordset:r json_typeof:r jsonb_agg:r jsonb_array_elements:r jsonb_array_elements_text:r
jsonb_array_length:r jsonb_build_array:r jsonb_build_object:r jsonb_concat:r jsonb_each:r
jsonb_each_text:r jsonb_extract_path:r jsonb_extract_path_text:r jsonb_insert:r jsonb_object:r
jsonb_object_agg:r jsonb_object_keys:r jsonb_path_exists:r jsonb_path_exists_tz:r
jsonb_path_match:r jsonb_path_query:r jsonb_path_query_array:r jsonb_path_query_first:r
jsonb_path_query_tz:r jsonb_populate_record:r jsonb_populate_recordset:r jsonb_pretty:r
jsonb_set:r jsonb_set_lax:r jsonb_strip_nulls:r jsonb_to_record:r jsonb_to_recordset:r
jsonb_typeof:r justify_days:r justify_hours:r justify_interval:r lag:r last_value:r lcm:r lead:r
left:r length:r ln:r log:r log10:r lower:r lower_inc:r lower_inf:r lpad:r ltrim:r make_date:r
make_interval:r make_time:r make_timestamp:r make_timestamptz:r masklen:r max:r md5:r min:r
min_scale:r mod:r mode:r mxid_age:r netmask:r network:r now:r nth_value:r ntile:r num_nonnulls:r
num_nulls:r numeric:r numnode:r numrange:r obj_description:r octet_length:r overlay:r
percent_rank:r percentile_cont:r percentile_disc:r pg_backend_pid:n pg_blocking_pids:n
pg_char_to_encoding:r pg_collation_is_visible:r pg_column_compression:r pg_column_is_updatable:r
pg_column_size:r pg_conf_load_time:n pg_conversion_is_visible:r pg_current_logfile:r
pg_current_snapshot:r pg_database_size:r pg_describe_object:r pg_encoding_to_char:r
pg_event_trigger_ddl_commands:r pg_filenode_relation:r pg_function_is_visible:r
pg_get_constraintdef:r pg_get_expr:r pg_get_function_arguments:r
pg_get_function_identity_arguments:r pg_get_function_result:r pg_get_function_sqlbody:r
pg_get_functiondef:r pg_get_indexdef:r pg_get_keywords:r pg_get_object_address:r
pg_get_partition_constraintdef:r pg_get_partkeydef:r pg_get_publication_tables:r
pg_get_replica_identity_index:r pg_get_ruledef:r pg_get_serial_sequence:r
pg_get_statisticsobjdef:r pg_get_triggerdef:r pg_get_userbyid:r pg_get_viewdef:r
pg_get_wal_replay_pause_state:n pg_has_role:r pg_identify_object:r
pg_index_column_has_property:r pg_index_has_property:r pg_indexam_has_property:r
pg_indexes_size:r pg_input_error_info:r pg_input_is_valid:r pg_is_in_recovery:n
pg_is_wal_replay_paused:n pg_jit_available:r pg_last_wal_receive_lsn:n pg_last_wal_replay_lsn:n
pg_last_xact_replay_timestamp:n pg_notification_queue_usage:n pg_opclass_is_visible:r
pg_operator_is_visible:r pg_opfamily_is_visible:r pg_options_to_table:r pg_partition_ancestors:r
pg_partition_root:r pg_partition_tree:r pg_postmaster_start_time:n pg_relation_filenode:r
pg_relation_filepath:r pg_relation_is_publishable:r pg_relation_is_updatable:r
pg_relation_size:r pg_safe_snapshot_blocking_pids:n pg_sequence_parameters:r
pg_settings_get_flags:r pg_size_bytes:r pg_size_pretty:r pg_sleep:r pg_sleep_for:r
pg_sleep_until:r pg_snapshot_xip:r pg_snapshot_xmax:r pg_snapshot_xmin:r pg_stat_get_activity:n
pg_stat_get_backend_pid:n pg_stat_get_dead_tuples:n pg_stat_get_live_tuples:n
pg_stat_get_numscans:n pg_stat_get_tuples_returned:n pg_statistics_obj_is_visible:r
pg_table_is_visible:r pg_table_size:r pg_tablespace_databases:r pg_tablespace_location:r
pg_tablespace_size:r pg_total_relation_size:r pg_trigger_depth:r pg_ts_config_is_visible:r
pg_ts_dict_is_visible:r pg_ts_parser_is_visible:r pg_ts_template_is_visible:r
pg_type_is_visible:r pg_typeof:r pg_visible_in_snapshot:r pg_wal_lsn_diff:r
pg_xact_commit_timestamp:r phraseto_tsquery:r pi:r plainto_tsquery:r position:r power:r
querytree:r quote_ident:r quote_literal:r quote_nullable:r radians:r random:r random_normal:r
range_merge:r rank:r regexp_count:r regexp_instr:r regexp_like:r regexp_match:r regexp_matches:r
regexp_replace:r regexp_split_to_array:r regexp_split_to_table:r regexp_substr:r regr_avgx:r
regr_avgy:r regr_count:r regr_intercept:r regr_r2:r regr_slope:r regr_sxx:r regr_sxy:r
regr_syy:r repeat:r replace:r reverse:r right:r round:r row_number:r row_security_active:r
row_to_json:r rpad:r rtrim:r scale:r setweight:r sha224:r sha256:r sha384:r sha512:r
shobj_description:r sign:r similar_to_escape:r sin:r sind:r sinh:r split_part:r sqrt:r
starts_with:r statement_timestamp:r stddev:r stddev_pop:r stddev_samp:r string_agg:r
string_to_array:r string_to_table:r strip:r strpos:r substr:r sum:r tan:r tand:r tanh:r text:r
timeofday:r timezone:r to_ascii:r to_char:r to_date:r to_hex:r to_json:r to_jsonb:r to_number:r
to_regclass:r to_regnamespace:r to_regproc:r to_regprocedure:r to_regrole:r to_regtype:r
to_regtypemod:r to_timestamp:r to_tsquery:r to_tsvector:r transaction_timestamp:r translate:r
trim_array:r trim_scale:r trunc:r ts_headline:r ts_rank:r ts_rank_cd:r ts_rewrite:r tsrange:r
tstzrange:r tsvector_to_array:r txid_current_snapshot:r txid_snapshot_xip:r txid_snapshot_xmax:r
txid_snapshot_xmin:r txid_visible_in_snapshot:r unistr:r unnest:r upper:r upper_inc:r
upper_inf:r var_pop:r var_samp:r variance:r version:r websearch_to_tsquery:r width_bucket:r
xmlagg:r crypt:o digest:o gen_salt:o hmac:o similarity:o strict_word_similarity:o unaccent:o
uuid_generate_v1:o uuid_generate_v1mc:o uuid_generate_v4:o uuid_nil:o word_similarity:o
",
);

/// What pgrw knows about a function name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Knowledge {
    /// A built-in that must run on the primary.
    Primary(Builtin),
    /// A built-in that only reads.
    ReadOnly,
    /// A well-known extension function that only reads.
    ExtensionReadOnly,
}

/// PostgreSQL's built-in operators (and pg_trgm's): they call only read-only functions.
pub(super) static READ_ONLY_OPERATORS: WordTable<256> = WordTable::new(
    "
! !! != !~ !~* !~~ !~~* # #- #< #<= #<> #= #> #>= #>> % %> %>> & && &< &<| &> * + - -> ->> -|- /
< <% <-> <->> << <<% <<-> <<->> <<<-> <<= <<| <= <=> <> <@ <^ = > >= >> >>= >^ ? ?# ?& ?- ?-| ?|
?|| @ @-@ @> @? @@ @@@ ^ ^@ | |&> |/ |>> || ||/ ~ ~* ~<=~ ~<~ ~= ~>=~ ~>~ ~~ ~~*
",
);

/// What pgrw knows about `name` (one table probe; families of primary-only
/// functions by prefix).
pub(super) fn knowledge(name: &[u8]) -> Option<Knowledge> {
    match FUNCTIONS.tag(name) {
        Some(b'r') => return Some(Knowledge::ReadOnly),
        Some(b'o') => return Some(Knowledge::ExtensionReadOnly),
        Some(tag) => return Some(Knowledge::Primary(Builtin::from_tag(tag))),
        None => {}
    }
    if !matches!(name.first(), Some(b'b' | b'd' | b'l' | b'p')) {
        return None;
    }
    PRIMARY_PREFIXES
        .iter()
        .find(|(prefix, _)| name.starts_with(prefix.as_bytes()))
        .map(|(_, builtin)| Knowledge::Primary(*builtin))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builtin_primary(name: &[u8]) -> Option<Builtin> {
        match knowledge(name) {
            Some(Knowledge::Primary(builtin)) => Some(builtin),
            _ => None,
        }
    }

    #[test]
    fn every_tag_is_known() {
        for (name, tag) in FUNCTIONS.words() {
            assert!(
                b"wslxucepnro".contains(&tag),
                "{}",
                String::from_utf8_lossy(name)
            );
        }
    }

    #[test]
    fn no_function_is_listed_twice() {
        let mut names: Vec<&[u8]> = FUNCTIONS.words().map(|(name, _)| name).collect();
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count);
    }

    #[test]
    fn tags_map_to_kinds() {
        assert_eq!(builtin_primary(b"nextval"), Some(Builtin::Sequence));
        assert_eq!(builtin_primary(b"set_config"), Some(Builtin::SetConfig));
        assert_eq!(
            builtin_primary(b"pg_current_wal_lsn"),
            Some(Builtin::PrimaryOnly)
        );
        assert_eq!(knowledge(b"lower"), Some(Knowledge::ReadOnly));
        assert_eq!(
            knowledge(b"uuid_generate_v4"),
            Some(Knowledge::ExtensionReadOnly)
        );
    }

    #[test]
    fn prefixes_cover_families() {
        assert_eq!(
            builtin_primary(b"pg_stat_reset_shared"),
            Some(Builtin::Writes)
        );
        assert_eq!(
            builtin_primary(b"pg_advisory_xact_lock"),
            Some(Builtin::XactLock)
        );
        assert_eq!(builtin_primary(b"lower"), None);
    }
}
