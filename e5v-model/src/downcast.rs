//! Recognising a concrete backend's tensors inside generic code.

/// `value` as a `T`, if it is one (a type check through `Any`, no conversion).
pub(crate) fn downcast<A: 'static, T: 'static>(value: A) -> Option<T> {
    let mut slot = Some(value);
    (&mut slot as &mut dyn std::any::Any)
        .downcast_mut::<Option<T>>()?
        .take()
}
