//! Property tests: typed values survive encode/decode, and random or
//! mangled bytes never panic the frame reader or the decoders.

use proptest::prelude::*;

use rvirt_remote::calls::{
    ConnectDomainEventCallbackRegisterAnyArgs, ConnectListAllDomainsRet, DomainGetInfoRet,
    DomainGetSecurityLabelRet, DomainGetVcpusRet, DomainOpenConsoleArgs, NodeGetInfoRet,
};
use rvirt_remote::types::{DomainStatsRecord, VcpuInfo};
use rvirt_remote::xdr::{from_bytes, to_bytes, CharArray, CharList, Opaque};
use rvirt_remote::{
    Args, FrameDecoder, Header, Message, MessageStatus, MessageType, NonnullDomain, Procedure,
    RemoteError, Ret, TypedParam, TypedParamValue, Uuid, Xdr,
};

fn domain() -> impl Strategy<Value = NonnullDomain> {
    ("[a-z0-9_.-]{1,24}", any::<[u8; 16]>(), -1i32..10_000).prop_map(|(name, u, id)| {
        NonnullDomain {
            name,
            uuid: Uuid(u),
            id,
        }
    })
}

fn typed_value() -> impl Strategy<Value = TypedParamValue> {
    prop_oneof![
        any::<i32>().prop_map(TypedParamValue::Int),
        any::<u32>().prop_map(TypedParamValue::UInt),
        any::<i64>().prop_map(TypedParamValue::LLong),
        any::<u64>().prop_map(TypedParamValue::ULLong),
        // NaN != NaN, so keep doubles finite for the equality check.
        (-1e300f64..1e300).prop_map(TypedParamValue::Double),
        (0i32..2).prop_map(TypedParamValue::Boolean),
        ".{0,40}".prop_map(TypedParamValue::String),
    ]
}

fn roundtrip<T: Xdr + PartialEq + std::fmt::Debug>(v: &T) {
    let b = to_bytes(v);
    assert!(b.len().is_multiple_of(4), "XDR output is 4-byte aligned");
    assert_eq!(&from_bytes::<T>(&b).unwrap(), v);
}

proptest! {
    #[test]
    fn domains_roundtrip(d in domain()) {
        roundtrip(&d);
    }

    #[test]
    fn strings_of_any_length_roundtrip(s in ".{0,200}") {
        roundtrip(&s);
        roundtrip(&Some(s.clone()));
    }

    #[test]
    fn list_all_domains_roundtrips(ds in prop::collection::vec(domain(), 0..20)) {
        let r = ConnectListAllDomainsRet { ret: ds.len() as u32, domains: ds };
        roundtrip(&r);
        let ret = Ret::ConnectListAllDomains(r);
        prop_assert_eq!(Ret::decode(Procedure::ConnectListAllDomains, &ret.encode()).unwrap(), ret);
    }

    #[test]
    fn info_structs_roundtrip(
        state in any::<u8>(), max_mem in any::<u64>(), memory in any::<u64>(),
        ncpu in any::<u16>(), cpu_time in any::<u64>(), model in "[a-z0-9_]{0,40}",
    ) {
        roundtrip(&DomainGetInfoRet { state, max_mem, memory, nr_virt_cpu: ncpu, cpu_time });
        let node = NodeGetInfoRet {
            model: CharArray::from_str_truncated(&model),
            memory, cpus: 2, mhz: 3000, nodes: 1, sockets: 1, cores: 2, threads: 1,
        };
        roundtrip(&node);
        let expect: String = model.chars().take(31).collect();
        prop_assert_eq!(node.model.to_string_lossy(), expect);
    }

    #[test]
    fn char_lists_and_opaque_roundtrip(label in prop::collection::vec(any::<u8>(), 0..64),
                                       map in prop::collection::vec(any::<u8>(), 0..64)) {
        roundtrip(&DomainGetSecurityLabelRet { label: CharList(label), enforcing: 0 });
        roundtrip(&DomainGetVcpusRet {
            info: vec![VcpuInfo { number: 0, state: 1, cpu_time: 5, cpu: 0 }],
            cpumaps: Opaque(map),
        });
    }

    #[test]
    fn typed_params_roundtrip(fields in prop::collection::vec(("[a-z.]{1,20}", typed_value()), 0..10),
                              d in domain()) {
        let params = fields.into_iter().map(|(field, value)| TypedParam { field, value }).collect();
        roundtrip(&DomainStatsRecord { dom: d, params });
    }

    #[test]
    fn nullable_fields_roundtrip(d in domain(), with_dom in any::<bool>(), dev in proptest::option::of("[a-z0-9]{1,8}")) {
        roundtrip(&ConnectDomainEventCallbackRegisterAnyArgs { event_id: 0, dom: with_dom.then(|| d.clone()) });
        roundtrip(&DomainOpenConsoleArgs { dom: d, dev_name: dev, flags: 0 });
    }

    #[test]
    fn errors_roundtrip(code in 0i32..120, detail in proptest::option::of(".{0,60}")) {
        roundtrip(&RemoteError::new(code, 10, detail.as_deref()));
    }

    #[test]
    fn random_bytes_never_panic_any_decoder(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let mut d = FrameDecoder::new();
        d.push(&bytes);
        while let Ok(Some(m)) = d.next_message() {
            let _ = rvirt_remote::server::decode_incoming(&m);
        }
        let _ = Message::from_frame(&bytes);
        for p in Procedure::ALL {
            // Whatever decodes re-encodes to a canonical form that is stable.
            if let Ok(a) = Args::decode(*p, &bytes) {
                let once = a.encode();
                prop_assert_eq!(Args::decode(*p, &once).unwrap().encode(), once);
            }
            if let Ok(r) = Ret::decode(*p, &bytes) {
                let once = r.encode();
                prop_assert_eq!(Ret::decode(*p, &once).unwrap().encode(), once);
            }
        }
        let _ = from_bytes::<RemoteError>(&bytes);
    }

    #[test]
    fn random_payloads_in_valid_frames_never_panic(proc_ in 0i32..500, payload in prop::collection::vec(any::<u8>(), 0..256)) {
        let m = Message {
            header: Header::remote(proc_, MessageType::Call, 1, MessageStatus::Ok),
            payload,
        };
        let mut d = FrameDecoder::new();
        d.push(&m.to_bytes().unwrap());
        let got = d.next_message().unwrap().unwrap();
        prop_assert_eq!(&got, &m);
        if let Err(refused) = rvirt_remote::server::decode_incoming(&got) {
            // A malformed CALL is answered, never dropped.
            prop_assert!(refused.reply().is_some());
        }
    }

    #[test]
    fn length_prefixes_are_bounded_by_the_data(len in any::<u32>(), tail in prop::collection::vec(any::<u8>(), 0..64)) {
        let mut b = len.to_be_bytes().to_vec();
        b.extend(tail);
        for p in Procedure::ALL {
            // Would abort on an allocation of `len` elements if unchecked.
            let _ = Ret::decode(*p, &b);
        }
    }
}
