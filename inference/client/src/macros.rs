//! One line per endpoint becomes a [`Call`](crate::Call) constructor in a `calls` module and an
//! async method of the client type, so a method name and its types are written once.

/// Declares a canister's endpoints for a client type `C<T: Transport>` that has a
/// `fn transport(&self) -> &T`:
///
/// ```ignore
/// typed_endpoints! {
///     MyClient;
///     /// docs
///     Update method_name(arg: &ArgType, other: u64) -> ReplyType;
///     Query other_method() -> Vec<Thing>;
/// }
/// ```
#[macro_export]
macro_rules! typed_endpoints {
    ($client:ident; $(
        $(#[$doc:meta])*
        $mode:ident $method:ident($($arg:ident: $ty:ty),*) -> $reply:ty;
    )*) => {
        /// Each endpoint as a [`Call`]($crate::Call): method, mode, encoded argument and reply type.
        pub mod calls {
            #[allow(unused_imports)]
            use super::*;
            $(
                $(#[$doc])*
                pub fn $method($($arg: $ty),*) -> $crate::Call<$reply> {
                    $crate::Call::new(
                        stringify!($method),
                        $crate::Mode::$mode,
                        $crate::__candid::encode_args(($($arg,)*)),
                    )
                }
            )*
        }

        impl<T: $crate::Transport> $client<T> {
            $(
                $(#[$doc])*
                pub async fn $method(&self, $($arg: $ty),*) -> Result<$reply, $crate::CallError> {
                    calls::$method($($arg),*).send(self.transport()).await
                }
            )*
        }
    };
}
